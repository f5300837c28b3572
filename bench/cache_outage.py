"""Latency of HTTP requests when the cache (Redis) is healthy, refuses, or hangs.

Starts gunicorn with the production config (gunicorn.conf.py, 2 workers) three times —
CACHE_URL on a working Redis, on a closed port, and on a server that accepts connections
and never answers — and times anonymous `GET /api/docs/` (rate-limited: two throttles ask
the cache) and `GET /healthz`, with the default CACHE_TIMEOUT_MS and breaker, and with the
breaker off (CACHE_RETRY_SECONDS=0: every request asks the broken cache). Prints a
Markdown table (the README's "Cache outage" figures).

    DATABASE_URL=postgres://... .venv/bin/python -m bench.cache_outage [--requests 40]
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from divine_whispers.tests.cache_servers import hung_server, refused_url  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(cache_url: str, **extra: str):
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "divine_whispers.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
        "AUDIT_HMAC_KEY": os.environ.get("AUDIT_HMAC_KEY") or secrets.token_urlsafe(32),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        "CACHE_URL": cache_url,
        "API_ANON_THROTTLE_RATE": "1000000/minute",
        "LOG_LEVEL": "ERROR",
        **extra,
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(base)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _wait_until_up(base: str) -> None:
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)


def timed_get(url: str) -> tuple[int, float]:
    start = time.perf_counter()
    try:
        status = urllib.request.urlopen(url, timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, (time.perf_counter() - start) * 1000


def measure(base: str, path: str, n: int) -> dict:
    results = [timed_get(base + path) for _ in range(n)]
    times = sorted(ms for _, ms in results)
    return {
        "statuses": sorted({status for status, _ in results}),
        "first": results[0][1],
        "p50": statistics.median(times),
        "max": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument(
        "--redis", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/1")
    )
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL (healthz asks the database)")
    rows = []
    with hung_server() as hung:
        caches = [("healthy", args.redis), ("refused", refused_url()), ("hung", hung)]
        for breaker in ("5 s (default)", "off"):
            extra = {} if breaker.startswith("5") else {"CACHE_RETRY_SECONDS": "0"}
            for state, url in caches:
                with gunicorn(url, **extra) as base:
                    for path in ("/api/docs/", "/healthz"):
                        print(f"cache {state}, breaker {breaker}: {path}", file=sys.stderr)
                        rows.append((state, breaker, path, measure(base, path, args.requests)))
    print(f"\n{args.requests} sequential requests each, CACHE_TIMEOUT_MS=100 (default)\n")
    print("| cache | breaker | request | statuses | first (ms) | p50 (ms) | max (ms) |")
    print("|---|---|---|---|---|---|---|")
    for state, breaker, path, m in rows:
        statuses = ",".join(map(str, m["statuses"]))
        print(
            f"| {state} | {breaker} | `GET {path}` | {statuses} | {m['first']:.0f} "
            f"| {m['p50']:.1f} | {m['max']:.0f} |"
        )


if __name__ == "__main__":
    main()
