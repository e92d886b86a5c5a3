"""What each setting means: the text of the configuration reference (docs/reference/).

Keyed like `settings._FIELDS` (the variable without `EVENTFWD_`); a test fails when a setting
has no entry here, so a new setting cannot reach the docs undescribed.
"""

from __future__ import annotations

HELP: dict[str, str] = {
    "REDIS_URL": (
        "Redis for the ledger and the Celery broker (one server). `redis://`, `rediss://` "
        "(TLS), `unix://`, `sentinel://` (`?ssl=true` for TLS)"
    ),
    "MOLOCO_BASE_URL": (
        "Moloco's base URL, e.g. `https://{platform_name}-evt.mcm-api.moloco.com`; workers "
        "refuse to start without one (here or per platform)"
    ),
    "MOLOCO_API_KEY": (
        "sent as `x-api-key`; workers refuse to start without one (here or per platform)"
    ),
    "RETRY_BASE_SECONDS": (
        "seconds before the first retry; doubles on each retry, with up to 25 % jitter"
    ),
    "RETRY_MAX_SECONDS": "seconds, the longest wait between two tries (≥ the base)",
    "MAX_ATTEMPTS": "tries per event, the first included (the first try and five retries)",
    "CIRCUIT_FAILURE_THRESHOLD": (
        "transient failures in a row; one more opens the platform's circuit"
    ),
    "CIRCUIT_PROBE_SECONDS": "seconds between probes while a circuit is open",
    "REPLAY_INTERVAL_SECONDS": (
        "seconds between beat's replays of `retries_exhausted` dead letters"
    ),
    "MAX_REPLAYS": "automatic replays per event",
    "PUMP_INTERVAL_SECONDS": "seconds between pump runs (due retries, lost work, probes)",
    "LEASE_SECONDS": (
        "seconds a claim lasts before another worker may take over; must be more than twice "
        "the HTTP timeout"
    ),
    "MAX_EVENT_AGE_SECONDS": (
        "seconds; older events (by their `timestamp`) become `expired` dead letters instead "
        "of being sent"
    ),
    "RATE_LIMIT_PER_SECOND": "requests per second per platform, across the fleet",
    "HTTP_TIMEOUT_SECONDS": "seconds, read timeout of a request to Moloco (connect: about 3 s)",
    "DELIVERED_TTL_SECONDS": (
        "seconds a delivered id is remembered so that enqueueing it again sends nothing"
    ),
    "KEY_PREFIX": "prefix of every Redis key (1-64 of `A-Z a-z 0-9 _ . -`)",
    "QUEUE": "Celery queue for deliveries; periodic jobs use `<queue>.control`",
    "STRICT_FIELDS": "`true` refuses every field Moloco's schema does not name",
    "SPOOL_DIR": (
        "a local directory where producers keep events while Redis is unreachable (off when unset)"
    ),
    "SPOOL_MAX_MB": "MiB the spool may hold; beyond it `enqueue()` raises `EnqueueError`",
    "HASH_IDENTIFIERS": (
        "`true` hashes `user_id`, `device.persistent_id` and `custom_id` (SHA-256) at enqueue"
    ),
    "HASH_PEPPER": "secret for identifier hashing (HMAC-SHA-256); never printed",
    "DEAD_LETTER_RETENTION_DAYS": "days a dead letter is kept before beat trims it",
    "DEAD_LETTER_MAX_COUNT": "dead letters kept at most; beat trims the oldest beyond it",
    "DEAD_LETTER_EXPORT_DIR": (
        "where retention writes what it trims (JSONL) first; shared by every worker host"
    ),
    "WEB_HOST": (
        "address `eventfwd web` binds; any other than loopback needs `EVENTFWD_WEB_SECRET`"
    ),
    "WEB_PORT": "port of `eventfwd web`",
    "WEB_SECRET": (
        "access secret of the console (16+ characters; never printed): when set, every "
        "request must carry it (login form, `Authorization: Bearer …` or `X-Eventfwd-Secret`)"
    ),
    "WEB_READ_ONLY": (
        "`true`: the console shows everything and changes nothing (no replay, purge, pause, reset)"
    ),
    "BATCH_SIZE": (
        "the most events one claim hands a delivery engine (bounds one script's run time in Redis)"
    ),
    "DELIVERY_THREADS": (
        "POSTs a worker process keeps in flight, refilled as they complete (its HTTP "
        "connection pool per host is as large). Against a slow endpoint throughput grows with"
        " threads x processes / latency until the CPU is spent; the price is that a SIGKILLed"
        " process may resend what it had in flight (Moloco de-duplicates by id)"
    ),
    "CONCURRENCY_INITIAL": (
        "a platform's in-flight cap (requests outstanding to it across the fleet) before it "
        "has adapted; also what a platform that starts hanging receives at most before its "
        "first timeout"
    ),
    "CONCURRENCY_MIN": (
        "the cap never goes below this (halving on timeouts, 5xx, 429, slow round trips)"
    ),
    "CONCURRENCY_MAX": (
        "the cap never grows above this (it grows while deliveries are fast and the cap is in"
        " use); Moloco at 50 ms needs about 50 in flight per 1,000 events/s"
    ),
    "POISON_THRESHOLD": (
        "lease expiries (its worker died) before an event is dead-lettered as `poison`"
    ),
    "ALLOWED_PLATFORMS": (
        "comma-separated platform ids events may be enqueued for and sent to; any other is "
        "refused at enqueue (`InvalidEvent` on `platform_id`, rule `platform_not_allowed`) "
        "and never sent by workers. Set it whenever platform ids come from requests (see "
        "[security](../security.md))"
    ),
    "CLIENT_IDS": (
        "`keep`: an event's own `id` is Moloco's de-duplication key; `ignore`: every enqueued"
        " event gets a fresh id, for callers who must not choose ids (a known id sent first "
        "turns the genuine event into a no-op). Per call, `enqueue(..., "
        'id_namespace="client-42")` keeps ids but scopes them to one caller'
    ),
}
