"""eventfwd's benchmark suite: `python -m bench` (or `make bench`); not part of the test suite.

Every scenario starts what it measures itself on loopback (a private redis-server, the fake
Moloco sink in its own process, Celery workers as subprocesses), runs each figure several times,
prints the median next to a baseline measured in the same run, and stops everything it started.
"""
