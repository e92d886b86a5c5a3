"""eventfwd: forward retail user events to Moloco Commerce Media's User Event API, durably.

The public faces are `producers` (what web apps import) and `worker` (what `celery -A worker`
loads). This package holds everything else, in rooms by role:

    eventfwd.core    settings, event schema, Redis key layout, ledger and its Lua scripts
    eventfwd.ops     operator models shared by the CLI and the console: fleet snapshot, bulk work
    eventfwd.cli     the operator's `eventfwd` command
    eventfwd.devkit  the fake Moloco (`sink`), a private Redis, `eventfwd dev`

Imports run one way: core <- producers <- worker <- ops <- cli; the dev kit uses core and producers.
"""
