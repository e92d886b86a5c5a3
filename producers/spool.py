"""A local, crash-safe spool for validated events that Redis could not take.

One file per spooled batch. A batch is written under `tmp/`, fsync'd, renamed into `ready/`
(rename is atomic) and `ready/` is fsync'd: once `append` returns, the batch survives a crash of
the process or the machine, and a reader never sees half a file. No locks: each writer uses a
name of its own, and a drainer claims a file by renaming it into `claimed/` under its own name;
only one rename of a file can succeed, so only one drainer holds a batch at a time.

    {dir}/tmp/{name}                  being written (a crash leaves it; removed after a day)
    {dir}/ready/{name}                waiting for Redis
    {dir}/claimed/{host}.{pid}~{name} being drained by that process
    {dir}/corrupt/{name}              unreadable; kept for a person, never deleted here

`{name}` is `{time_ns:020d}-{pid}-{random}-{events}.jsonl`, so names sort by spooling time and
`status()` needs no reads. A file is a JSON header line `{"v": 1, "events": N}` then N lines
`[id, platform, body, event_ms]`. A claim whose process is gone (same host) or that is older
than `STALE_CLAIM_S` goes back to `ready/`: draining twice is safe because enqueue keeps an id
that the ledger holds or delivered recently untouched.

The size bound counts `ready/` and `claimed/`. Each process re-counts at most about once a
second and adds its own writes in between, so processes sharing a directory may overshoot the
bound by what the others wrote within that second.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from eventfwd.core.errors import ConfigError, EnqueueError, InvalidEvent
from eventfwd.core.schema import check_stored

FORMAT_VERSION = 1
STALE_CLAIM_S = 120.0
STALE_TMP_S = 86_400.0
RESCAN_MIN_S = 1.0
_NAME = re.compile(r"^(\d{20})-(\d+)-([0-9a-f]+)-(\d+)\.jsonl$")

# (id, platform, body, event_ms): the rows `Ledger.enqueue` takes.
Row = tuple[str, str, str, int]


class SpoolCorrupt(Exception):
    """A spool file cannot be read back (moved to `corrupt/`, never deleted)."""


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What is in the spool, from the file names alone."""

    directory: str
    ready_files: int
    ready_events: int
    claimed_files: int
    claimed_events: int
    corrupt_files: int
    used_bytes: int
    max_bytes: int
    oldest_ms: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def encode(rows: Sequence[Row]) -> bytes:
    """The bytes of one spool file holding `rows`."""
    lines = [json.dumps({"v": FORMAT_VERSION, "events": len(rows)})]
    lines += [json.dumps([i, p, b, int(ms)], ensure_ascii=False) for i, p, b, ms in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def decode(data: bytes) -> list[Row]:
    """Rows of one spool file; `SpoolCorrupt` when it is not exactly what `encode` wrote."""
    try:
        header, *lines = data.decode("utf-8").split("\n")
        meta = json.loads(header)
        rows: list[Row] = []
        for line in lines:
            if line:
                i, p, b, ms = json.loads(line)
                if not (isinstance(i, str) and isinstance(p, str) and isinstance(b, str)):
                    raise ValueError("a row is not [id, platform, body, event_ms]")
                try:
                    check_stored(i, p, b)  # a file is not trusted: it goes to Redis and Moloco
                except InvalidEvent as exc:
                    raise ValueError(f"row {len(rows) + 1}: {exc.errors[0]}") from None
                rows.append((i, p, b, int(ms)))
    except (ValueError, TypeError) as exc:
        raise SpoolCorrupt(str(exc)) from None
    if meta.get("v") != FORMAT_VERSION or meta.get("events") != len(rows):
        raise SpoolCorrupt(f"header {meta!r} does not match {len(rows)} row(s)")
    return rows


class Spool:
    """One spool directory, shared safely by any number of processes on one host."""

    def __init__(self, directory: str | os.PathLike[str], *, max_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.tmp, self.ready = self.directory / "tmp", self.directory / "ready"
        self.claimed, self.corrupt = self.directory / "claimed", self.directory / "corrupt"
        try:
            for sub in (self.tmp, self.ready, self.claimed, self.corrupt):
                sub.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"EVENTFWD_SPOOL_DIR={directory}: cannot be used ({exc})") from None
        # A rough count without a lock: a race only skews it until the next re-count.
        self._counted_bytes = 0
        self._counted_at = -1e9
        self._added_bytes = 0
        self._count_every_s = RESCAN_MIN_S

    # -- writing ---------------------------------------------------------------------------

    def append(self, rows: Sequence[Row]) -> None:
        """Store `rows` durably as one batch; `EnqueueError` when the spool is full or failing."""
        data = encode(rows)
        if self.used_bytes() + len(data) > self.max_bytes:
            self._count()
            if self.used_bytes() + len(data) > self.max_bytes:
                raise EnqueueError(
                    f"the spool at {self.directory} is full ({self.used_bytes()} of "
                    f"{self.max_bytes} bytes, EVENTFWD_SPOOL_MAX_MB): {len(rows)} event(s) "
                    "not stored; start Redis, or drain with `eventfwd spool drain`"
                )
        name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}-{len(rows)}.jsonl"
        tmp = self.tmp / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.ready / name)
            _fsync_dir(self.ready)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise EnqueueError(
                f"could not write {len(rows)} event(s) to the spool at {self.directory}: {exc}"
            ) from exc
        self._added_bytes += len(data)

    def used_bytes(self) -> int:
        """Bytes in `ready/` and `claimed/`, re-counted at most about once a second."""
        if time.monotonic() - self._counted_at > self._count_every_s:
            self._count()
        return self._counted_bytes + self._added_bytes

    def _count(self) -> None:
        started = time.monotonic()
        total = 0
        for folder in (self.ready, self.claimed):
            for entry in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
        self._counted_bytes, self._added_bytes = total, 0
        self._counted_at = time.monotonic()
        # A huge spool takes a while to list: re-count less often then.
        self._count_every_s = max(RESCAN_MIN_S, 20 * (self._counted_at - started))

    # -- draining --------------------------------------------------------------------------

    def owner(self) -> str:
        """This process's claim prefix (computed each time: a fork changes the pid)."""
        return f"{_host()}.{os.getpid()}"

    def ready_names(self, limit: int | None = None) -> list[str]:
        """Names waiting in `ready/`, oldest first."""
        names = sorted(n for n in os.listdir(self.ready) if _NAME.match(n))
        return names if limit is None else names[:limit]

    def has_work(self) -> bool:
        """True when something waits in `ready/` or `claimed/` (cheap: stops at the first)."""
        for folder in (self.ready, self.claimed):
            with os.scandir(folder) as entries:
                if any(True for _ in entries):
                    return True
        return False

    def claim(self, name: str) -> Path | None:
        """Take `ready/{name}` for this process; None when another process took it first."""
        target = self.claimed / f"{self.owner()}~{name}"
        try:
            os.rename(self.ready / name, target)
        except FileNotFoundError:
            return None
        with contextlib.suppress(FileNotFoundError):
            os.utime(target)  # the claim's age starts now, not when the batch was spooled
        return target

    def read(self, claimed: Path) -> list[Row]:
        return decode(claimed.read_bytes())

    def done(self, claimed: Path) -> None:
        """Forget a drained batch (gone already: another drainer reclaimed and drained it)."""
        with contextlib.suppress(FileNotFoundError):
            claimed.unlink()

    def release(self, claimed: Path) -> None:
        """Put a claimed batch back in `ready/` for a later drain."""
        with contextlib.suppress(FileNotFoundError):
            os.rename(claimed, self.ready / claimed.name.split("~", 1)[1])

    def quarantine(self, claimed: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rename(claimed, self.corrupt / claimed.name.split("~", 1)[1])

    def reclaim_stale(self) -> int:
        """Return claims of dead (or stuck) drainers to `ready/`; also drop day-old tmp files."""
        host, now, moved = _host(), time.time(), 0
        for path in self.claimed.iterdir():
            owner, sep, name = path.name.partition("~")
            if not sep:
                continue
            owner_host, _, pid = owner.rpartition(".")
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            gone = owner_host == host and pid.isdigit() and not _pid_alive(int(pid))
            if gone or now - max(st.st_mtime, st.st_ctime) > STALE_CLAIM_S:
                try:
                    os.rename(path, self.ready / name)
                    moved += 1
                except FileNotFoundError:
                    pass
        for path in self.tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > STALE_TMP_S:
                    path.unlink()
        return moved

    # -- status ----------------------------------------------------------------------------

    def status(self) -> SpoolStatus:
        """Counts from the file names, and bytes in use."""
        counts: dict[str, tuple[int, int]] = {}
        oldest: int | None = None
        for label, folder in (("ready", self.ready), ("claimed", self.claimed)):
            files = events = 0
            for name in os.listdir(folder):
                match = _NAME.match(name.partition("~")[2] if label == "claimed" else name)
                if not match:
                    continue
                files += 1
                events += int(match.group(4))
                spooled_ms = int(match.group(1)) // 1_000_000
                oldest = spooled_ms if oldest is None else min(oldest, spooled_ms)
            counts[label] = (files, events)
        self._count()
        return SpoolStatus(
            directory=str(self.directory),
            ready_files=counts["ready"][0],
            ready_events=counts["ready"][1],
            claimed_files=counts["claimed"][0],
            claimed_events=counts["claimed"][1],
            corrupt_files=len(os.listdir(self.corrupt)),
            used_bytes=self.used_bytes(),
            max_bytes=self.max_bytes,
            oldest_ms=oldest,
        )
