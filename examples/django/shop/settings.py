"""Settings of the example project: only what eventfwd needs (no database, no templates)."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "shop.urls"
USE_TZ = True

INSTALLED_APPS = ["producers.django"]  # the eventfwd app: system checks, the producer
MIDDLEWARE = [
    # InvalidEvent → 422 {"errors": [{"path", "rule", "message"}, ...]}, EnqueueError → 503
    "producers.django.middleware.EventErrorsMiddleware",
]

# Any EVENTFWD_* variable can be set here instead of in the environment, e.g.:
# EVENTFWD_REDIS_URL = "redis://redis.internal:6379/0"
# EVENTFWD_SPOOL_DIR = "/var/spool/eventfwd"
# EVENTFWD_HASH_IDENTIFIERS = True
