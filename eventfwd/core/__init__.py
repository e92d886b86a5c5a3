"""The shared core: settings, event schema, Redis key layout, the ledger and its scripts.

Everything else imports from here; it imports nothing of eventfwd's but itself.
"""
