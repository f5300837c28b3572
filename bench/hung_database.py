"""How many concurrent requests a hung database takes before the pages that need no
database (the schema, `/`) suffer — with the default gunicorn config (gunicorn.conf.py:
one worker per core, 4 threads each) and the default database bounds.

The "database" is a TCP server that accepts every connection and never answers. For each
burst size N, N requests that need the database (`GET /api/v1/wallet/balance` with a
token) are sent at once, and while they are in flight 10 requests for `/api/schema/` and
`/`; the script reports the database requests' time to 503, the database-free pages'
latency, and `/healthz`. Run twice: with the connect breaker (default
DATABASE_CONNECT_RETRY_SECONDS=1) and without it (0: every request waits for its own
connect timeout), which shows what the breaker buys. Prints a Markdown table and writes
bench/results/hung_database.json.

    .venv/bin/python -m bench.hung_database [--bursts 8,32,128,256]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from divine_whispers.tests.served import (  # noqa: E402
    HungDatabase,
    Response,
    free_port,
    get,
    production_env,
    served,
)

TOKEN = {"Authorization": "Token " + "a" * 64}
TIMEOUT = 60.0


def _get(port: int, path: str, headers: dict | None = None):
    """`get`, with a request that had no answer within TIMEOUT counted as status 0."""
    started = time.monotonic()
    try:
        return get(port, path, headers, TIMEOUT)
    except OSError:
        return Response(0, {}, b"", time.monotonic() - started)


# The schema is generated per request (about 0.3-1 s of CPU on the shared 2-core machine):
# two of them, and eight `/`.
FREE_PAGES = ("/api/schema/", "/", "/", "/", "/") * 2
STEADY_RATES = (20, 50, 100)


def _burst(port: int, size: int) -> dict:
    with ThreadPoolExecutor(max_workers=size + len(FREE_PAGES) + 1) as pool:
        database = [pool.submit(_get, port, "/api/v1/wallet/balance", TOKEN) for _ in range(size)]
        time.sleep(0.05)  # the burst is in flight
        health = pool.submit(_get, port, "/healthz")
        free = [pool.submit(_get, port, path) for path in FREE_PAGES]
        db_answers = [f.result() for f in database]
        free_answers = [f.result() for f in free]
        health_answer = health.result()
    db_seconds = [a.seconds for a in db_answers] or [0.0]  # burst 0: the baseline
    free_seconds = [a.seconds for a in free_answers]
    return {
        "burst": size,
        "database_503": sum(a.status == 503 for a in db_answers),
        "database_other": sorted({a.status for a in db_answers if a.status != 503}),
        "database_median_s": round(statistics.median(db_seconds), 2),
        "database_max_s": round(max(db_seconds), 2),
        "free_pages_200": sum(a.status == 200 for a in free_answers),
        "free_pages_median_s": round(statistics.median(free_seconds), 3),
        "free_pages_max_s": round(max(free_seconds), 3),
        "healthz_status": health_answer.status,
        "healthz_s": round(health_answer.seconds, 2),
    }


def _steady(port: int, rate: int, seconds: float = 6.0) -> dict:
    """`rate` database requests per second for `seconds`; the database-free pages are
    sampled (two every 0.5 s) from the second second on, once the breaker has seen a
    timeout."""
    with ThreadPoolExecutor(max_workers=int(rate * 4) + 20) as pool:
        database, free = [], []
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            while sent < elapsed * rate:
                database.append(pool.submit(_get, port, "/api/v1/wallet/balance", TOKEN))
                sent += 1
            if elapsed > 1.0 and len(free) < (elapsed - 1.0) * 4:
                free += [pool.submit(_get, port, path) for path in ("/api/schema/", "/")]
            time.sleep(0.005)
        db_answers = [f.result() for f in database]
        free_answers = [f.result() for f in free]
    free_seconds = [a.seconds for a in free_answers]
    return {
        "steady_rate_per_s": rate,
        "database_503": sum(a.status == 503 for a in db_answers),
        "database_sent": len(db_answers),
        "database_max_s": round(max(a.seconds for a in db_answers), 2),
        "free_pages_200": sum(a.status == 200 for a in free_answers),
        "free_pages_sent": len(free_answers),
        "free_pages_median_s": round(statistics.median(free_seconds), 3),
        "free_pages_max_s": round(max(free_seconds), 3),
    }


def measure(bursts: list[int], retry_seconds: str, threads: str | None) -> tuple[list, list]:
    rows, steady = [], []
    extra = {"GUNICORN_THREADS": threads} if threads else {}
    with HungDatabase() as database, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        env = production_env(
            database.url, port, DATABASE_CONNECT_RETRY_SECONDS=retry_seconds, **extra
        )
        with served(env, Path(folder) / "gunicorn.log") as port:
            row = {"breaker_seconds": retry_seconds, "threads": threads or "default"}
            for size in bursts:
                rows.append({**row, **_burst(port, size)})
                print(rows[-1], flush=True)
                time.sleep(1.5)
            for rate in STEADY_RATES:
                steady.append({**row, **_steady(port, rate)})
                print(steady[-1], flush=True)
                time.sleep(1.5)
    return rows, steady


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", default="0,4,8,16,32,128")
    parser.add_argument("--threads", default="", help="also with GUNICORN_THREADS=N (e.g. 4)")
    args = parser.parse_args()
    bursts = [int(size) for size in args.bursts.split(",")]
    rows, steady = [], []
    for retry, threads in [("1", None), ("0", None)] + [("1", args.threads)] * bool(args.threads):
        more_rows, more_steady = measure(bursts, retry, threads)
        rows, steady = rows + more_rows, steady + more_steady
    print(
        "| threads | breaker | burst | DB requests: 503 / median / max s "
        "| schema and `/`: 200 / median / max s | /healthz |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['threads']} | {'on' if row['breaker_seconds'] != '0' else 'off'} | "
            f"{row['burst']} | "
            f"{row['database_503']} / {row['database_median_s']} / {row['database_max_s']} | "
            f"{row['free_pages_200']} / {row['free_pages_median_s']} / {row['free_pages_max_s']} | "
            f"{row['healthz_status']} in {row['healthz_s']} s |"
        )
    print(
        "\n| threads | breaker | DB requests per s | DB: 503 / sent / max s "
        "| free pages: 200 / sent / median / max s |"
    )
    print("|---|---|---|---|---|")
    for row in steady:
        print(
            f"| {row['threads']} | {'on' if row['breaker_seconds'] != '0' else 'off'} | "
            f"{row['steady_rate_per_s']} | {row['database_503']} / {row['database_sent']} / "
            f"{row['database_max_s']} | {row['free_pages_200']} / {row['free_pages_sent']} / "
            f"{row['free_pages_median_s']} / {row['free_pages_max_s']} |"
        )
    out = ROOT / "bench" / "results" / "hung_database.json"
    out.write_text(
        json.dumps(
            {
                "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "bursts": rows,
                "steady": steady,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
