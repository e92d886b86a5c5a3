"""`python -m eventfwd.devkit.sink`: the sink command without the main CLI."""

from eventfwd.devkit.sink.command import sink

sink(prog_name="eventfwd sink")
