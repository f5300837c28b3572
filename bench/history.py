"""History page latency: GET /api/v1/wallet/transactions for a user with 10,000 rows and
for one with 1,000,000 rows (100,000 in a quick run), first page and 20 pages deep.

The rows are inserted with SQL into a copy of the seeded template (the append-only
triggers refuse UPDATE/DELETE only). Requests go through Django's full stack in one
process (test Client: middleware, token auth, DRF, cursor pagination), without network,
so the figure is the page's own cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from bench import db

HISTORY_DB = "dw_bench_hist"
SMALL_USER, LARGE_USER = 1, 2

FILL_SQL = """
INSERT INTO wallet_transaction (wallet_id, user_id, type, amount, status, balance_after,
    reference_id, request_fingerprint, description, actor_id, created_at, updated_at)
SELECT %(user)s, %(user)s, 'spend', -1, 'success', 1000000000000 - g, NULL, '', 'Reading',
    %(user)s, now() - make_interval(secs => g / 10.0), now()
FROM generate_series(1, %(rows)s) g
"""


def steps(bench) -> list:
    if not (db.ROOT / "wallet" / "api" / "views.py").exists():
        return []
    large = 100_000 if bench.args.quick else 1_000_000
    small = 10_000

    def fill() -> None:
        bench.server.clone(bench.template, HISTORY_DB)
        bench.extra.setdefault("_dbs", []).append(HISTORY_DB)
        import psycopg

        with psycopg.connect(bench.server.url_for(HISTORY_DB), autocommit=True) as conn:
            for user, rows in ((SMALL_USER, small - 1), (LARGE_USER, large - 1)):
                conn.execute(FILL_SQL, {"user": user, "rows": rows})
            conn.execute("VACUUM ANALYZE wallet_transaction")

    def probe() -> None:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.history",
                "--requests",
                "100" if bench.args.quick else "300",
            ],
            cwd=db.ROOT,
            env=db.django_env(bench.server.url_for(HISTORY_DB)),
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(done.stdout)
        result["rows"] = {"small": small, "large": large}
        result["ratio"] = round(
            result["large"]["first_p50_ms"] / result["small"]["first_p50_ms"], 3
        )
        result["deep_ratio"] = round(
            result["large"]["deep_p50_ms"] / result["small"]["deep_p50_ms"], 3
        )
        bench.extra["history"] = result
        bench.log(
            f"    → first page p50 {result['small']['first_p50_ms']} ms ({small:,} rows) vs "
            f"{result['large']['first_p50_ms']} ms ({large:,} rows): ratio {result['ratio']}"
        )
        bench.server.drop(HISTORY_DB)

    return [
        (f"history: {small:,} and {large:,} rows", fill),
        ("history page latency", probe),
    ]


def _measure(client, token: str, requests: int) -> dict:
    headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
    url = "/api/v1/wallet/transactions"
    for _ in range(10):
        client.get(url, **headers)
    first = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(url, **headers)
        first.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.content[:200]
    deep = []
    next_url = url
    for _ in range(20):  # follow the cursor 20 pages deep (1,000 rows in)
        t0 = time.perf_counter()
        response = client.get(next_url, **headers)
        deep.append((time.perf_counter() - t0) * 1000)
        next_url = response.json()["next"]
    return {
        "first_p50_ms": round(statistics.median(first), 3),
        "first_p95_ms": round(sorted(first)[int(0.95 * (len(first) - 1))], 3),
        "deep_p50_ms": round(statistics.median(deep[-10:]), 3),
        "page_size": len(response.json()["results"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    import django

    django.setup()
    from django.test import Client

    client = Client()
    out = {
        "small": _measure(client, db.token_for(SMALL_USER), args.requests),
        "large": _measure(client, db.token_for(LARGE_USER), args.requests),
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
