"""Where an HTTP request's time goes inside the production server (issue 14).

    .venv/bin/python -m bench.profile_http [--path spend|balance] [--seconds 8]
                                           [--mode cpu|cprofile|both]

Seeds a scratch database (dw_bench_profile, or BENCH_PROFILE_DB), starts gunicorn with the
production config and environment (bench/http_bench.py) plus the hooks of
bench/profile_gunicorn.conf.py on its one worker (each request after the first 50), drives
it with wrk at 2 connections, and prints, in CPU time of the worker (waits for the
database, the cache or a free core do not count): without a profiler, the CPU per request
and the part inside `services.spend`; under cProfile, each stage's time per request and the
top functions by own time. `make bench` runs the same measurement (`steps`).
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import db, http_bench

# (label, file suffix, function name): cumulative time of these functions per request.
STAGES = [
    ("whole request in the worker", "gunicorn/workers/sync.py", "handle_request"),
    ("WSGI application", "django/core/handlers/wsgi.py", "__call__"),
    ("Django handler (middleware + view)", "django/core/handlers/base.py", "get_response"),
    ("DRF dispatch (view)", "rest_framework/views.py", "dispatch"),
    ("authentication", "rest_framework/views.py", "perform_authentication"),
    ("throttling", "rest_framework/views.py", "check_throttles"),
    ("input serializer", "wallet/api/writes.py", "validated"),
    ("services.spend", "wallet/services/spending.py", "spend"),
    ("balance read", "wallet/selectors/__init__.py", "balance_of_user"),
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


def profile_server(
    database_url: str,
    workdir: Path,
    path: str,
    seconds: int,
    wallets: int,
    mode: str,
    root: Path = db.ROOT,
    **knobs: str,
) -> dict:
    """One production server (one worker, one thread) under the profiler's hooks, driven
    by wrk at 2 connections; returns the CPU figures (mode "cpu") or the pstats. `root`:
    the source tree served (another checkout, for a before/after: bench/ab_http.py)."""
    for old in workdir.glob("worker-*"):
        old.unlink()
    port = http_bench.free_port()
    env = http_bench.production_env(
        database_url,
        port,
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="1",  # cProfile and the thread clocks follow one thread
        BENCH_PROFILE_DIR=str(workdir),
        BENCH_PROFILE_MODE=mode,
        **knobs,
    )
    env["PYTHONPATH"] = str(root)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "-c", str(Path(__file__).with_name("profile_gunicorn.conf.py"))],
        cwd=root,
        env=env,
        stdout=(workdir / f"gunicorn-{mode}-{path}-{root.name}.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        if not http_bench.wait_healthy(base, proc):
            raise RuntimeError(f"gunicorn did not start: see {workdir}")
        tokens = http_bench.write_tokens(workdir, wallets)
        kwargs = (
            {"path": http_bench.SPEND[0]}
            if path == "spend"
            else {"path": http_bench.BALANCE, "method": "GET", "body": None, "ok": 200}
        )
        result = http_bench.run_wrk(base, tokens, clients=2, duration=seconds, **kwargs)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    out: dict = {"responses": result["statuses"], "p50_ms": result["percentiles_ms"]["50"]}
    if mode == "cpu":
        dumps = list(workdir.glob("worker-*.json"))
        if not dumps:
            raise SystemExit("no request was measured (fewer than BENCH_PROFILE_SKIP?)")
        figures = json.loads(dumps[0].read_text())
        n = figures["requests"]
        per = {k.removesuffix("_s"): figures[k] / n * 1000 for k in figures if k.endswith("_s")}
        out |= {
            "requests": n,
            "cpu_ms": round(per["process_cpu"], 3),
            "app_cpu_ms": round(per["app_cpu"], 3),
            "spend_ms": round(per["spend_cpu"], 3),
            "outside_spend_ms": round(per["process_cpu"] - per["spend_cpu"], 3),
        }
        return out
    dumps = list(workdir.glob("worker-*.pstats"))
    if not dumps:
        raise SystemExit("no request was profiled (fewer than BENCH_PROFILE_SKIP requests?)")
    requests = sum(int(p.stem.rsplit("-", 1)[1]) for p in dumps)
    stats = pstats.Stats(*[str(p) for p in dumps])
    out["requests"] = requests
    # Python function calls per request: independent of the machine's load.
    out["calls_per_request"] = round(stats.total_calls / requests)
    out["stages_ms"] = {label: round(ms, 3) for label, ms in stage_table(stats, requests)}
    out["stats"] = stats
    return out


def steps(bench) -> list:
    """`make bench`'s CPU step: per-request CPU of a spend and a balance read, without a
    profiler (the target figures), then the cProfile stages (where it goes)."""
    results: dict = {}
    bench.extra["cpu_profile"] = results
    seconds = 5 if bench.args.quick else 10

    def measure(path: str, mode: str) -> None:
        url = bench.fresh_run_db("profile")
        figures = profile_server(url, bench.workdir, path, seconds, bench.wallets, mode)
        figures.pop("stats", None)
        results.setdefault(path, {}).update(
            figures
            if mode == "cpu"
            else {
                "cprofile_stages_ms": figures["stages_ms"],
                "python_calls_per_request": figures["calls_per_request"],
            }
        )
        if mode == "cpu":
            bench.log(
                f"    → {path}: {figures['cpu_ms']:.2f} ms CPU per request, "
                f"{figures['spend_ms']:.2f} in services.spend, "
                f"{figures['outside_spend_ms']:.2f} outside ({figures['requests']} requests)"
            )

    return [
        (
            f"per-request CPU of the production server: {path} ({mode})",
            lambda p=path, m=mode: measure(p, m),
        )
        for path in ("spend", "balance")
        for mode in ("cpu", "cprofile")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--path", choices=["spend", "balance"], default="spend")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--wallets", type=int, default=10_000)
    parser.add_argument(
        "--mode",
        choices=["cprofile", "cpu", "both"],
        default="both",
        help="cpu: real per-request CPU (clocks only); cprofile: the call tree",
    )
    args = parser.parse_args()
    db.ensure_secrets()
    server = db.Server.from_env()
    workdir = Path(tempfile.mkdtemp(prefix="dw-profile-"))
    database = os.environ.get("BENCH_PROFILE_DB", "dw_bench_profile")
    print(f"seeding {database} ({args.wallets} wallets) …", flush=True)
    db.seed_template(server, database, args.wallets)
    try:
        for mode in ("cpu", "cprofile") if args.mode == "both" else (args.mode,):
            out = profile_server(
                server.url_for(database), workdir, args.path, args.seconds, args.wallets, mode
            )
            print(f"{out['requests']} requests measured, p50 {out['p50_ms']:.1f} ms ({mode})")
            if mode == "cpu":
                print(
                    f"\nper request, no profiler ({args.path}): {out['cpu_ms']:.2f} ms of worker"
                    f" CPU (WSGI app {out['app_cpu_ms']:.2f}), services.spend"
                    f" {out['spend_ms']:.2f}, outside services.spend {out['outside_spend_ms']:.2f}"
                )
                continue
            print(f"{out['calls_per_request']} Python function calls per request")
            print(f"\nper request (ms of worker CPU under cProfile, about 2-3 x), {args.path}:")
            for label, ms in out["stages_ms"].items():
                print(f"  {label:<40} {ms:7.2f}")
            print()
            out["stats"].sort_stats("tottime").print_stats(25)
    finally:
        server.drop(database)


if __name__ == "__main__":
    main()
