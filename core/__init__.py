"""Shared core of eventfwd: settings, event schema, Redis key layout, ledger and task names.

Both sides import from here; `producers` and `worker` never import each other.
"""
