"""The dev kit: a fake Moloco (`sink`), a private redis-server, local processes, `eventfwd dev`.

It imports `eventfwd.core` and `producers` only, so tests, bench and examples can use it
without the Celery runtime.
"""
