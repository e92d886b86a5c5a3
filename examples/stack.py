"""Run an example web app with the whole eventfwd stack behind it (see `examples/run`).

A private redis-server (AOF on, data under `.eventfwd-dev/examples/<framework>/`), the fake
Moloco, one worker and beat, and the app on 127.0.0.1:<port> with a spool directory. Without
`--smoke` it prints a few curl commands and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eventfwd.devkit.dev import managed_process  # noqa: E402
from eventfwd.devkit.localredis import LocalRedis, free_port  # noqa: E402
from eventfwd.devkit.samples import sample_events  # noqa: E402
from eventfwd.devkit.sink.server import SinkServer  # noqa: E402

API_KEY = "dev-key"
PLATFORM = "demo"
APPS = {
    "flask": ["examples/flask/app.py"],
    "fastapi": ["examples/fastapi/app.py"],
    "django": ["examples/django/manage.py", "runserver", "--noreload", "127.0.0.1:{port}"],
}


def post(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"smoke: timed out waiting for {what}")
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError:
        return False


def smoke(base: str, sink: SinkServer, redis_server: LocalRedis) -> None:
    """Valid → 202 and delivered; invalid → 422; Redis stopped → 202 (spooled) → delivered."""
    events = sample_events(3, seed="smoke")
    status, body = post(f"{base}/events/{PLATFORM}", events[0])
    print(f"valid event       -> {status} {body}")
    assert status == 202, body
    status, refused = post(f"{base}/events/{PLATFORM}", {"event_type": "SEARCH"})
    print(f"invalid event     -> {status} {len(refused['errors'])} field error(s)")
    assert status == 422 and refused["errors"], refused
    redis_server.stop()
    spooled = []
    for event in events[1:]:
        status, answer = post(f"{base}/events/{PLATFORM}", event)
        print(f"Redis stopped     -> {status} {answer} (spooled)")
        assert status == 202, answer
        spooled.append(answer["id"])
    redis_server.start()
    wanted = {body["id"], *spooled}
    wait_until(
        lambda: wanted <= {e["event"]["id"] for e in sink.events()}, 60, "every event delivered"
    )
    ids = [e["event"]["id"] for e in sink.events()]
    assert sorted(ids) == sorted(wanted), ids
    print(f"delivered to the fake Moloco, once each: {len(ids)} event(s), ids kept")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=sorted(APPS))
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--smoke", action="store_true", help="check it works, then exit")
    args = parser.parse_args()
    port = free_port() if args.smoke else args.port
    data = ROOT / ".eventfwd-dev" / "examples" / args.framework
    data.mkdir(parents=True, exist_ok=True)

    redis_server = LocalRedis(data / "redis").start()
    sink = SinkServer(api_key=API_KEY).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env.update(
        {
            "EVENTFWD_REDIS_URL": redis_server.url,
            "EVENTFWD_MOLOCO_BASE_URL": sink.url,
            "EVENTFWD_MOLOCO_API_KEY": API_KEY,
            "EVENTFWD_PUMP_INTERVAL_SECONDS": "0.5",
            "EVENTFWD_SPOOL_DIR": str(data / "spool"),
            "PYTHONPATH": str(ROOT),
            "PORT": str(port),
        }
    )
    celery = [sys.executable, "-m", "celery", "-A", "worker"]
    app = [sys.executable, *(a.format(port=port) for a in APPS[args.framework])]
    base = f"http://127.0.0.1:{port}"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with (
            managed_process(
                [*celery, "worker", "--concurrency", "2"], env, data / "worker.log", cwd=ROOT
            ),
            managed_process(
                [*celery, "beat", "--schedule", str(data / "beat")],
                env,
                data / "beat.log",
                cwd=ROOT,
            ),
            managed_process(app, env, data / "app.log", cwd=ROOT) as web,
        ):
            deadline = time.monotonic() + 30
            while not answers(base + "/"):
                if web.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"the {args.framework} app did not start; see {data / 'app.log'}")
                time.sleep(0.2)
            print(f"{args.framework} example on {base}  (logs in {data.relative_to(ROOT)}/)")
            print(f"redis-server {redis_server.url}, fake Moloco {sink.url}, worker and beat\n")
            if args.smoke:
                smoke(base, sink, redis_server)
                return
            event = json.dumps(sample_events(1, seed="curl")[0])
            print("try:")
            print(f"  curl -si {base}/events/{PLATFORM} -H 'Content-Type: application/json' \\")
            print(f"       -d '{event}'")
            print(f'  curl -si {base}/events/{PLATFORM} -d \'{{"event_type": "SEARCH"}}\'')
            print(f"  curl -s {sink.url}/_sink/stats")
            print("\nCtrl-C stops everything.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()
        redis_server.stop()


if __name__ == "__main__":
    main()
