"""Dead-letter exports hold identifiers, IP and user agent: private files, and a redacted form.

(issue #11, item 5)
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from eventfwd.core.ledger import Ledger
from eventfwd.core.settings import Settings
from tests.support.dead import dead_record, import_dead, run
from worker.retention import enforce_retention

pytestmark = pytest.mark.integration
USER_ID = "user-4711-plain"
IP = "203.0.113.9"
UA = "Mozilla/5.0 (X11; Linux x86_64) Secret/1.0"


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # a usual umask: files would be world-readable by default
    yield
    os.umask(old)


def pii_record() -> dict[str, object]:
    record = dead_record()
    event = record["event"]
    assert isinstance(event, dict)
    event["user_id"] = USER_ID
    event["device"] = {**event.get("device", {}), "ip": IP, "ua": UA, "persistent_id": "p-1"}
    return record


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_dead_export_writes_a_file_only_its_owner_can_read(
    redis_url: str, settings: Settings, tmp_path: Path, open_umask: None
) -> None:
    import_dead(settings, pii_record())
    path = tmp_path / "dead.jsonl"
    assert run(redis_url, "dead", "export", str(path)).exit_code == 0
    assert mode(path) == 0o600


def test_dead_export_redact_hashes_identifiers_ip_and_user_agent(
    redis_url: str, settings: Settings, tmp_path: Path
) -> None:
    [event_id] = import_dead(settings, pii_record())
    path = tmp_path / "shareable.jsonl"
    result = run(redis_url, "dead", "export", str(path), "--redact")
    assert result.exit_code == 0, result.output
    text = path.read_text()
    for secret in (USER_ID, IP, UA, '"p-1"'):
        assert secret not in text
    line = json.loads(text)
    assert line["id"] == event_id
    assert line["event"]["user_id"].startswith("sha256:")
    assert line["event"]["device"]["ip"].startswith("sha256:")


def test_retention_exports_are_private_files_too(
    settings: Settings, rclient: redis.Redis, tmp_path: Path, open_umask: None
) -> None:
    import_dead(settings, pii_record(), pii_record())
    s = settings.replace(dead_letter_max_count=1, dead_letter_export_dir=str(tmp_path / "x"))
    result = enforce_retention(Ledger(redis.Redis.from_url(s.redis_url), s), s)
    assert result.trimmed == 1 and result.export_path
    assert mode(Path(result.export_path)) == 0o600
