"""A fake Moloco User Event API for local runs, demos and tests, with fault injection.

wire      HTTP/1.1 parsing and response bytes (no aiohttp: see its docstring)
schema    walker over the OpenAPI body schema `v1Event`
rules     body validation: schema, then Moloco's server rules and messages
faults    the fault plan and the two spellings of a rule (JSON, command line)
tally     counters, recent events, record file
routes    what to answer: the user-event path and the /_sink/ control API
protocol  one connection: requests in order, replies, hangs, resets
server    SinkServer (a loop thread, for tests) and run_sink (blocking)
command   the click command `sink`
"""

from eventfwd.devkit.sink.server import SinkServer, run_sink

__all__ = ["SinkServer", "run_sink"]
