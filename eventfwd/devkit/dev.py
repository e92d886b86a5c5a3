"""`eventfwd dev`: the whole stack on one machine, with nothing to configure.

Starts a private redis-server (AOF on, data under `--dir`), the fake Moloco sink, one worker,
beat and the web console (`eventfwd web`, on loopback); enqueues a sample of every event type
plus a few the sink refuses; shows progress and a summary with the console's URL and the
commands to inspect the dead letters. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from eventfwd.core.connection import connect
from eventfwd.core.errors import InvalidEvent
from eventfwd.core.keys import Keys
from eventfwd.core.launch import celery_argv
from eventfwd.core.records import Records
from eventfwd.core.settings import Settings
from eventfwd.devkit.localprocess import ChildProcess, wait_for
from eventfwd.devkit.localredis import LocalRedis
from eventfwd.devkit.samples import invalid_samples, sample_events
from producers import EventProducer

API_KEY = "dev-key"
PLATFORM = "demo"
REFUSED_PLATFORM = "demo-refused"


def _env(redis_url: str, sink_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env.update(
        {
            "EVENTFWD_REDIS_URL": redis_url,
            "EVENTFWD_MOLOCO_BASE_URL": sink_url,
            "EVENTFWD_MOLOCO_API_KEY": API_KEY,
            "EVENTFWD_RETRY_BASE_SECONDS": "1",
            "EVENTFWD_PUMP_INTERVAL_SECONDS": "0.5",
            "EVENTFWD_RATE_LIMIT_PER_SECOND": "200",
        }
    )
    return env


@contextlib.contextmanager
def managed_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[ChildProcess]:
    """A child process we started, stopped with its whole process group (pool children too)."""
    child = ChildProcess(log.stem, args, env, log, cwd=Path.cwd()).start()
    try:
        yield child
    finally:
        child.stop(20)


def _console_port(wanted: int) -> int:
    """`wanted` when it is free on loopback, else any free port."""
    for port in (wanted, 0):
        with contextlib.closing(socket.socket()) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free port on 127.0.0.1")


def _wait_for_console(url: str, proc: ChildProcess, timeout_s: float = 15) -> bool:
    def answers() -> bool:
        if not proc.alive():
            raise OSError("the console exited")
        try:
            with urllib.request.urlopen(url + "static/console.css", timeout=1):
                return True
        except OSError:
            return False

    try:
        return wait_for(answers, timeout_s, "the console", step_s=0.2)
    except OSError:  # exited, or the wait timed out (TimeoutError is an OSError)
        return False


def _celery(what: str, *extra: str) -> list[str]:
    # a worker.py in the directory `eventfwd dev` runs from must not stand in for ours
    return celery_argv(what, "--loglevel", "INFO", *extra)


def _progress(records: Records, total: int, timeout_s: float, before: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    tty = sys.stdout.isatty()
    while True:
        snap = records.stats()
        delivered = snap["counters"].get("delivered", 0) - before
        line = (
            f"delivered {delivered}/{total}  backlog {snap['backlog']}  "
            f"retried {snap['counters'].get('retried', 0)}  dead {snap['dead']}"
        )
        click.echo(("\r" + line) if tty else line, nl=not tty)
        if snap["backlog"] == 0 or time.monotonic() > deadline:
            if tty:
                click.echo()
            return snap
        time.sleep(0.5 if tty else 2)


@click.command()
@click.option(
    "--dir", "data_dir", default=".eventfwd-dev", show_default=True, type=click.Path(path_type=Path)
)
@click.option(
    "--events", "count", default=40, show_default=True, help="Valid sample events to send."
)
@click.option("--exit", "exit_when_done", is_flag=True, help="Stop everything after the summary.")
@click.option(
    "--timeout", "timeout_s", default=120.0, show_default=True, help="Seconds to wait for delivery."
)
@click.option(
    "--web-port",
    default=8640,
    show_default=True,
    help="Port of the web console on 127.0.0.1 (another free one when taken).",
)
def dev(data_dir: Path, count: int, exit_when_done: bool, timeout_s: float, web_port: int) -> None:
    """Run redis-server, the fake Moloco sink, a worker, beat and the web console locally, and
    send a sample."""
    from eventfwd.devkit.sink.server import SinkServer

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        redis_server = LocalRedis(data_dir / "redis").start()
    except FileNotFoundError as exc:
        click.echo(f"eventfwd dev: {exc}", err=True)
        sys.exit(1)
    sink = SinkServer(api_key=API_KEY, record_path=str(data_dir / "sink-received.jsonl")).start()
    env = _env(redis_server.url, sink.url)
    click.echo(f"redis-server  {redis_server.url}  (AOF in {data_dir / 'redis'})")
    click.echo(f"fake Moloco   {sink.url}  (accepted events: {data_dir / 'sink-received.jsonl'})")
    # Show the failure paths too: a short outage of the sink, and a platform it always refuses.
    sink.add_fault({"fault": 503, "count": 5, "platform": PLATFORM})
    sink.add_fault({"fault": 400, "platform": REFUSED_PLATFORM, "message": "missing page_id"})
    port = _console_port(web_port)
    console_url = f"http://127.0.0.1:{port}/"
    interrupted = False

    def on_sigterm(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with (
            managed_process(
                _celery("worker", "--concurrency", "2", "--hostname", "dev@%h"),
                env,
                data_dir / "worker.log",
            ),
            managed_process(
                _celery("beat", "--schedule", str(data_dir / "beat-schedule")),
                env,
                data_dir / "beat.log",
            ),
            managed_process(
                [sys.executable, "-m", "eventfwd.cli", "web", "--port", str(port)],
                env,
                data_dir / "web.log",
            ) as console,
        ):
            click.echo(f"worker + beat running (logs: {data_dir}/worker.log, beat.log)")
            if _wait_for_console(console_url, console):
                click.echo(f"web console   {console_url}  (log: {data_dir / 'web.log'})\n")
            else:
                click.echo(f"web console did not start; see {data_dir / 'web.log'}\n")
            settings = Settings.from_mapping(env)
            records = Records(connect(settings.redis_url), Keys(settings.key_prefix))
            before = records.stats()["counters"].get("delivered", 0)
            _send_samples(settings, count)
            snap = _progress(records, count + 3, timeout_s, before)
            _summary(records, snap, redis_server.url, before, running=not exit_when_done)
            if not exit_when_done:
                click.echo(f"\nor open the console: {console_url}")
            if not exit_when_done:
                click.echo(
                    "\nThe stack keeps running; Ctrl-C stops everything eventfwd dev started."
                )
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        click.echo("\nstopping worker, beat, sink and redis-server ...")
        sink.stop()
        redis_server.stop()
    if interrupted:
        click.echo("stopped.")


def _send_samples(settings: Settings, count: int) -> None:
    producer = EventProducer(settings=settings)
    ids = producer.enqueue_many(PLATFORM, sample_events(count))
    click.echo(f"enqueued {len(ids)} events of all 8 types for platform '{PLATFORM}'")
    producer.enqueue_many(REFUSED_PLATFORM, sample_events(3, seed="refused"))
    click.echo(f"enqueued 3 events for platform '{REFUSED_PLATFORM}' (the sink refuses them: 400)")
    for event in invalid_samples():
        try:
            producer.enqueue(PLATFORM, event)
        except InvalidEvent as exc:
            click.echo(f"refused before enqueue (nothing stored): {exc}")
    producer.close()


def _summary(
    records: Records, snap: dict[str, Any], redis_url: str, before: int, *, running: bool
) -> None:
    click.echo(f"\ndelivered to the fake Moloco: {snap['counters'].get('delivered', 0) - before}")
    click.echo(f"still pending: {snap['backlog']}")
    dead = list(records.dead_letters())
    click.echo(f"dead letters: {len(dead)}")
    for env in dead:
        click.echo(f"  {env.id}  {env.platform_id}  {env.reason}  HTTP {env.status}: {env.message}")
    prefix = f"EVENTFWD_REDIS_URL={redis_url}"
    click.echo("\ninspect them with:" if running else "\ninspect them (run without --exit) with:")
    click.echo(f"  {prefix} eventfwd dead list")
    if dead:
        click.echo(f"  {prefix} eventfwd dead show {dead[0].id}")
    click.echo(f"  {prefix} eventfwd stats")
    click.echo(f"  {prefix} eventfwd dead replay --all")
