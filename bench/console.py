"""`python -m bench.console`: how long the console takes to render with 1,000,000 dead letters.

Starts a private redis-server (no AOF: this measures reads), writes N dead letters with a Lua
loop (50,000 per call, a few seconds a million), then renders pages through the WSGI app in
this process, as a browser would get them, and prints the median and worst of a few renders:
the newest page, a page deep in the set (cursor), a filter by Moloco's message that matches
one in ten, a filter that matches nothing (stops at its scan limit), and the overview.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from eventfwd.core.settings import Settings
from eventfwd.devkit.localredis import LocalRedis
from eventfwd.web.app import create_app

# KEYS: none. ARGV: 1 prefix, 2 first index, 3 count, 4 now_ms.
# Writes dead letters ev:dl-{i}, one in ten with the message "missing page_id".
WRITE_DEAD = """
local p, first, n, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = first, first + n - 1 do
  local id = 'dl-' .. i
  local platform = (i % 3 == 0) and 'acme' or 'shop'
  local msg = (i % 10 == 0) and 'missing page_id' or 'service unavailable'
  local status = (i % 10 == 0) and '400' or '503'
  local reason = (i % 10 == 0) and 'rejected' or 'retries_exhausted'
  local dead_ms = now - (2000000 - i) * 10
  redis.call('HSET', p .. ':ev:' .. id, 'state', 'dead', 'platform', platform, 'reason', reason,
    'last_status', status, 'last_message', msg, 'dead_ms', dead_ms, 'attempts', 6,
    'enqueued_ms', dead_ms - 60000, 'event_ms', dead_ms - 60000,
    'body', '{"id":"' .. id .. '","event_type":"PAGE_VIEW","timestamp":"' .. dead_ms ..
      '","channel_type":"SITE","user_id":"u' .. (i % 5000) .. '","page_id":"p"}')
  redis.call('ZADD', p .. ':dead', dead_ms, id)
end
redis.call('SADD', p .. ':platforms', 'acme', 'shop')
return n
"""


def render(app: Any, path: str) -> tuple[float, int, bytes]:
    query = path.partition("?")[2]
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path.partition("?")[0],
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(),
        "REMOTE_ADDR": "127.0.0.1",
    }
    status: list[str] = []
    started = time.perf_counter()
    body = b"".join(app(environ, lambda s, h: status.append(s)))
    return time.perf_counter() - started, int(status[0].split()[0]), body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dead", type=int, default=1_000_000, help="dead letters to write")
    parser.add_argument("--renders", type=int, default=5, help="renders per page")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalRedis(Path(tmp), fsync="no").start()
        try:
            client = redis.Redis.from_url(server.url)
            client.config_set("appendonly", "no")
            started = time.perf_counter()
            now_ms = int(time.time() * 1000)
            script = client.register_script(WRITE_DEAD)
            for first in range(0, args.dead, 50_000):
                script(args=["eventfwd", first, min(50_000, args.dead - first), now_ms])
            info: Any = client.info("memory")
            print(
                f"wrote {client.zcard('eventfwd:dead'):,} dead letters in "
                f"{time.perf_counter() - started:.1f}s (Redis uses {info['used_memory_human']})"
            )
            app = create_app(Settings(redis_url=server.url))
            _, _, first_page = render(app, "/dead")
            cursor = first_page.split(b"after=", 1)[1].split(b'"', 1)[0].decode()
            deep = client.zrevrange("eventfwd:dead", 600_000, 600_000, withscores=True)
            deep_cursor = f"{int(deep[0][1])}%3A{deep[0][0].decode()}" if deep else cursor  # type: ignore[index]
            pages = {
                "dead letters, newest 50": "/dead",
                "dead letters, next page": f"/dead?after={cursor}",
                "dead letters, 600,000 deep": f"/dead?after={deep_cursor}",
                "filter: message 'page_id' (1 in 10)": "/dead?message=page_id",
                "filter: nothing matches (scan limit)": "/dead?message=no-such-message",
                "overview": "/",
            }
            print(f"{'page':40} {'median':>9} {'worst':>9}")
            for name, path in pages.items():
                times = []
                for _ in range(args.renders):
                    took_s, code, _ = render(app, path)
                    if code != 200:
                        sys.exit(f"{path} answered {code}")
                    times.append(took_s)
                print(
                    f"{name:40} {statistics.median(times) * 1000:7.0f}ms {max(times) * 1000:7.0f}ms"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
