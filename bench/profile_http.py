"""Where an HTTP request's time goes inside the production server (issue 14).

    .venv/bin/python -m bench.profile_http [--path spend|balance] [--seconds 8]

Seeds a scratch database (dw_bench_profile), starts gunicorn with the production config
and environment (bench/http_bench.py) plus a cProfile of its one worker
(bench/profile_gunicorn.conf.py: each request after the first 50), drives it with wrk
at 2 connections, and prints the time per request of each stage (CPU time of the worker,
so waits for the database, the cache or a free core do not count), then the top
functions by own time.
"""

from __future__ import annotations

import argparse
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import db, http_bench

# (label, file suffix, function name): cumulative time of these functions per request.
STAGES = [
    ("whole request in the worker", "gunicorn/workers/sync.py", "handle_request"),
    ("Django handler (middleware + view)", "django/core/handlers/base.py", "get_response"),
    ("DRF dispatch (view)", "rest_framework/views.py", "dispatch"),
    ("authentication", "rest_framework/views.py", "perform_authentication"),
    ("throttling", "rest_framework/views.py", "check_throttles"),
    ("input serializer", "wallet/api/writes.py", "validated"),
    ("services.spend", "wallet/services/spending.py", "spend"),
    ("balance read", "wallet/selectors.py", "wallet_for_user"),
    ("output serializers", "rest_framework/serializers.py", "data"),
    ("response rendering", "rest_framework/response.py", "rendered_content"),
]


def stage_table(stats: pstats.Stats, requests: int) -> list[tuple[str, float]]:
    """Cumulative time of each stage's function; the largest entry where several match
    (nested functions of one name, e.g. Serializer.data calling BaseSerializer.data)."""
    rows = []
    for label, suffix, name in STAGES:
        total = (
            max(
                value[3]
                for (filename, _, function), value in stats.stats.items()
                if filename.endswith(suffix) and function == name
            )
            if any(
                filename.endswith(suffix) and function == name
                for (filename, _, function) in stats.stats
            )
            else 0
        )
        if total:
            rows.append((label, total / requests * 1000))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", choices=["spend", "balance"], default="spend")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--wallets", type=int, default=10_000)
    args = parser.parse_args()
    for name in ("SECRET_KEY", "AUDIT_HMAC_KEY"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    server = db.Server.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="dw-profile-"))
    database = "dw_bench_profile"
    print(f"seeding {database} ({args.wallets} wallets) …", flush=True)
    db.seed_template(server, database, args.wallets)
    port = http_bench._free_port()
    env = http_bench.production_env(
        server.url_for(database),
        port,
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="1",  # cProfile follows one thread
        BENCH_PROFILE_DIR=str(workdir),
    )
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", "bench/profile_gunicorn.conf.py"],
        cwd=db.ROOT,
        env=env,
        stdout=(workdir / "gunicorn.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)
        base = f"http://127.0.0.1:{port}"
        tokens = http_bench.write_tokens(workdir, args.wallets)
        kwargs = (
            {"path": http_bench.SPEND[0]}
            if args.path == "spend"
            else {"path": http_bench.BALANCE, "method": "GET", "body": None, "ok": 200}
        )
        result = http_bench.run_wrk(
            base, tokens, clients=2, duration=args.seconds, **kwargs
        )  # the first requests (imports) are in the profile too; they are few
        print(
            f"{sum(result['statuses'].values())} requests, p50 "
            f"{result['percentiles_ms']['50']:.1f} ms under the profiler"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.drop(database)
    dumps = list(workdir.glob("worker-*.pstats"))
    if not dumps:
        raise SystemExit("no request was profiled (fewer than BENCH_PROFILE_SKIP requests?)")
    requests = sum(int(p.stem.rsplit("-", 1)[1]) for p in dumps)
    stats = pstats.Stats(*[str(p) for p in dumps])
    print(
        f"\nper request (ms of worker CPU under cProfile, about 2-3 x the real cost), {args.path}:"
    )
    for label, ms in stage_table(stats, requests):
        print(f"  {label:<40} {ms:7.2f}")
    print()
    stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
