"""Moloco's `device` fields from what a web request carries: user agent, client IP, language.

The framework integrations call `device_from` with their request's values and `with_device` to
fill an event's `device` where the caller left a field out (the caller's values always win).
The client IP is what the framework reports: behind a proxy, configure the framework to trust
the proxy's forwarded headers (Flask: `ProxyFix`, uvicorn: `--proxy-headers`, Django: a
middleware that sets `REMOTE_ADDR`), or the proxy's address is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# First match wins: iPad user agents also say "Mac OS X", Android ones also say "Linux".
_OS_PATTERNS = (
    (re.compile(r"iPhone|iPad|iPod|\biOS\b"), "ios"),
    (re.compile(r"Android"), "android"),
    (re.compile(r"CrOS"), "chromeos"),
    (re.compile(r"Windows"), "windows"),
    (re.compile(r"Mac OS X|Macintosh"), "macos"),
    (re.compile(r"Linux"), "linux"),
)
_LANGUAGE = re.compile(r"^([A-Za-z]{2})(?:[-_][A-Za-z0-9]+)*$")


def os_from_user_agent(user_agent: str) -> str | None:
    """The operating system a user agent names (`ios`, `android`, ...), or None."""
    for pattern, name in _OS_PATTERNS:
        if pattern.search(user_agent):
            return name
    return None


def language_from(accept_language: str) -> str | None:
    """The preferred ISO-639-1 language of an `Accept-Language` header, or None."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept_language.split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        match = _LANGUAGE.match(tag)
        if not match:
            continue
        q = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q > 0 and (best is None or (q, -position) > (best[0], best[1])):
            best = (q, -position, match.group(1).lower())
    return best[2] if best else None


def device_from(
    user_agent: str | None = None,
    client_ip: str | None = None,
    accept_language: str | None = None,
) -> dict[str, str]:
    """Moloco `device` fields (`ua`, `os`, `ip`, `language`) from request values."""
    device: dict[str, str] = {}
    if user_agent:
        device["ua"] = user_agent
        os_name = os_from_user_agent(user_agent)
        if os_name:
            device["os"] = os_name
    if client_ip:
        device["ip"] = client_ip
    language = language_from(accept_language) if accept_language else None
    if language:
        device["language"] = language
    return device


def with_device(event: Mapping[str, Any], device: Mapping[str, str]) -> Any:
    """A copy of `event` whose `device` has `device`'s fields where the event has none.

    Anything but a mapping (None for a body that was not JSON) is returned as it is, for
    validation to refuse with a 422.
    """
    if not isinstance(event, Mapping):
        return event
    out = dict(event)
    given = event.get("device")
    if given is None:
        given = {}
    if not isinstance(given, Mapping) or not device:
        return out  # a malformed device is reported by validation, as sent
    merged = dict(device)
    merged.update({k: v for k, v in given.items() if v is not None})
    out["device"] = merged
    return out
