"""Which platform id owns each per-platform override, when no allow-list says so.

`EVENTFWD_PLATFORM_<KEY>_*` names a platform by a key that `acme-eu`, `acme.eu` and `ACME_EU`
all share. With `EVENTFWD_ALLOWED_PLATFORMS` set, the settings refuse such ambiguity at start.
Without it the platform ids are not known at start, so each overridden key is pinned in Redis to
the first platform id that uses it (`{p}:override_owners`, written once with HSETNX): the fleet
agrees on one owner, and a look-alike id never borrows the owner's API key or URL. This module
is the rule's one home; the worker asks it before sending, `doctor` shows what it pinned.
"""

from __future__ import annotations

import threading

import redis

from eventfwd.core.connection import text
from eventfwd.core.keys import Keys
from eventfwd.core.settings import Settings, platform_env_key


class OverrideOwners:
    """Pins each overridden key to one platform id; answers who owns a look-alike's key."""

    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings) -> None:
        self.client = client
        self.keys = keys
        self.settings = settings
        self._owners: dict[str, str] = {}  # an owner never changes once pinned
        self._lock = threading.Lock()

    def needs_owner(self, platform_id: str) -> bool:
        """True when `platform_id` would take an override whose owner no allow-list names."""
        s = self.settings
        return s.allowed_platforms is None and platform_env_key(platform_id) in s.platforms

    def conflict(self, platform_id: str) -> str | None:
        """The platform id that owns the overrides `platform_id` would take, if another; else None.

        The first platform id to ask for a key becomes its owner, for the whole fleet.
        """
        if not self.needs_owner(platform_id):
            return None
        key = platform_env_key(platform_id)
        owner = self._owners.get(key)
        if owner is None:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.hsetnx(self.keys.override_owners, key, platform_id)
                pipe.hget(self.keys.override_owners, key)
                _, raw = pipe.execute()
            owner = text(raw)
            with self._lock:
                owner = self._owners.setdefault(key, owner)
        return None if owner == platform_id else owner

    def pinned(self) -> dict[str, str]:
        """Every overridden key's owner as recorded in Redis (keys without overrides left out)."""
        raw: dict[bytes | str, bytes | str] = self.client.hgetall(self.keys.override_owners)
        owners = {text(k): text(v) for k, v in raw.items()}
        return {k: v for k, v in sorted(owners.items()) if k in self.settings.platforms}


def conflict_message(platform_id: str, owner: str) -> str:
    """What a refused look-alike's dead letter says (and what the operator can do)."""
    key = platform_env_key(platform_id)
    return (
        f"platform {platform_id} would take the settings EVENTFWD_PLATFORM_{key}_* that "
        f"platform {owner} uses; set EVENTFWD_ALLOWED_PLATFORMS to say which platform ids exist"
    )
