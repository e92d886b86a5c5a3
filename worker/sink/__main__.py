"""`python -m worker.sink`: the sink command without the main CLI."""

from worker.sink.command import sink

sink(prog_name="eventfwd sink")
