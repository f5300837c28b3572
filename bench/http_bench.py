"""HTTP benchmark (issue 14): what a user following the README's production section gets.

gunicorn is started exactly as the README says — `gunicorn -c gunicorn.conf.py` with the
documented production environment (DEBUG off, SECRET_KEY, AUDIT_HMAC_KEY, DATABASE_URL,
CACHE_URL on Redis, ALLOWED_HOSTS) and nothing else: no setting that changes speed is
given here, so every default measured is the product's. The load comes from wrk (C, one
process, Lua script bench/wrk/load.lua: a random seeded user and that user's token per
request), installed from Debian by scripts/bench.sh.

Rows: closed loop `POST /api/v1/wallet/spend` at 1–32 connections spread over the
10,000 wallets, `GET /api/v1/wallet/balance`, an open loop (Poisson arrivals) at 25/50/75 %
of the saturated spend rate, and the peer endpoint (bench/peer: a DRF view with token
authentication calling dj-wallet's withdraw) served the same way on its own copy of the
database. `--only http_configs` also measures the worker model and connection handling
through the documented knobs (GUNICORN_WORKERS, GUNICORN_THREADS, CONN_MAX_AGE,
DATABASE_POOL_SIZE).

Every closed-loop cell and the service-level reference also carry their CPU split
(bench/cpu_split.py): CPU ms per operation of the app server, the load, PostgreSQL, Redis
and the rest of the machine, and how busy the machine was.

Hot-wallet HTTP rows are not run: with the production defaults one user may spend 30 times
a minute (velocity rule) and send 600 requests a minute (throttle), so a hot closed loop
would measure refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg

from bench import db
from bench.cpu_split import CpuSplit, Selector, descendants, named
from bench.servers import (
    BENCH_CACHE_URL,
    Granian,
    Gunicorn,
    free_port,
    production_env,
    wait_healthy,
)

__all__ = ["BENCH_CACHE_URL", "Granian", "Gunicorn", "free_port", "production_env", "wait_healthy"]

LUA = Path(__file__).resolve().parent / "wrk" / "load.lua"
SPEND_BODY = json.dumps({"job_type": db.JOB_TYPE_CODE})
CLOSED_CLIENTS = (1, 4, 8, 16, 32)
OPEN_LOOP_SHARES = (0.25, 0.5, 0.75)
OPEN_LOOP_CONNECTIONS = 32


def write_tokens(workdir: Path, wallets: int) -> Path:
    path = Path(workdir) / "tokens.txt"
    if not path.exists():
        path.write_text("".join(f"{db.token_for(i)}\n" for i in range(1, wallets + 1)))
    return path


def run_wrk(
    base: str,
    tokens: Path,
    *,
    path: str,
    clients: int,
    duration: float,
    method: str = "POST",
    body: str | None = SPEND_BODY,
    ok: int = 201,
    rate: float = 0,
) -> dict:
    """One wrk run; returns its RESULT line as a dict (latencies in ms)."""
    threads = min(clients, 2)
    env = dict(
        os.environ,
        BENCH_TOKENS=str(tokens),
        BENCH_METHOD=method,
        BENCH_PATH=path,
        BENCH_OK=str(ok),
        BENCH_THREADS=str(threads),
        BENCH_RATE=str(rate),
    )
    if body is not None:
        env["BENCH_BODY"] = body
    command = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{clients}",
        f"-d{max(1, round(duration))}s",
        "--timeout=10s",
        "-s",
        str(LUA),
        base,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line.removeprefix("RESULT "))
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-500:]}{done.stdout[-500:]}")


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk (scripts/bench.sh does, as root)")
    return found


def cell_from_wrk(system: str, mode: str, clients: int, result: dict, ok: int, **extra) -> dict:
    """The same summary shape as bench.run.Cell.summary(), from wrk's figures.

    wrk's percentiles cover every response; `ops` counts only the successful ones.
    """
    statuses = result["statuses"]
    ops = statuses.get(str(ok), 0)
    errors = {k: v for k, v in statuses.items() if k != str(ok)}
    errors.update({f"socket {k}": v for k, v in result["socket_errors"].items() if v})
    pct = result["percentiles_ms"]
    duration = result["duration_s"]
    return {
        "system": system,
        "mode": mode,
        "clients": clients,
        "duration_s": round(duration, 2),
        "ops": ops,
        "tps": round(ops / duration, 1) if duration else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms": round(pct["50"], 2),
        "p95_ms": round(pct["95"], 2),
        "p99_ms": round(pct["99"], 2),
        "mean_ms": round(result["mean_ms"], 2),
        "note": "wrk",
        **extra,
    }


class HttpSteps:
    """The HTTP steps of one bench run (see the module docstring)."""

    def __init__(self, bench) -> None:
        self.bench = bench
        self.servers: dict[str, Gunicorn] = {}
        self.tokens = write_tokens(bench.workdir, bench.wallets)
        self.rounds: dict[str, list[dict]] = {}
        bench.cleanups.append(self.stop)

    def duration(self) -> float:
        return self.bench.duration

    def start(
        self, label: str, settings_module: str | None = None, app: str | None = None, **knobs: str
    ) -> None:
        """A gunicorn (or, with the knob SERVER=granian, granian) on its own fresh copy of
        the seeded database, warmed up."""
        self.stop(label)
        if settings_module:
            knobs["DJANGO_SETTINGS_MODULE"] = settings_module
        url = self.bench.fresh_run_db(f"http_{label}")
        if knobs.pop("SERVER", "gunicorn") == "granian":
            self.servers[label] = Granian(self.bench.workdir, url, label, **knobs)
        else:
            self.servers[label] = Gunicorn(self.bench.workdir, url, label, app=app, **knobs)
        self.warm_up(label)

    def warm_up(self, label: str) -> None:
        """Every worker imports the views and prepares its statements on its first requests
        (gunicorn forks before loading the app); a long-running server has done that long
        ago, so one second of each request kind runs before anything is measured."""
        spend, body = ("/peer/withdraw", PEER_BODY) if label == "peer" else SPEND
        for path, method, request_body in ((spend, "POST", body), (BALANCE, "GET", None)):
            run_wrk(
                self.servers[label].base,
                self.tokens,
                path=path,
                method=method,
                body=request_body,
                clients=16,
                duration=1,
            )

    def stop(self, label: str | None = None) -> None:
        for name in [label] if label else list(self.servers):
            server = self.servers.pop(name, None)
            if server is not None:
                server.stop()

    def cpu_groups(self, label: str | None) -> dict[str, Selector]:
        """The process groups of a cell's CPU split: the server `label` measured (with
        its workers), the load — wrk, a child of this process, or for the service-level
        reference (`label` None) this process's worker children running services.spend —
        then PostgreSQL and Redis. The servers not measured fall into `other`."""
        servers = [s.proc.pid for s in self.servers.values()]
        groups: dict[str, Selector] = {}
        if label is not None:
            groups["app server"] = descendants(self.servers[label].proc.pid)
        load = "load generator" if label is not None else "bench process (services.spend)"
        groups[load] = descendants(os.getpid(), exclude=servers)
        groups["postgres"] = named("postgres")
        groups["redis"] = named("redis-server")
        return groups

    def closed(self, label: str, system: str, path: str, clients: int, **kw) -> dict:
        """One closed-loop wrk cell, with where the machine's CPU went during it."""
        ok = kw.get("ok", 201)
        with CpuSplit(self.cpu_groups(label)) as split:
            result = run_wrk(
                self.servers[label].base,
                self.tokens,
                path=path,
                clients=clients,
                duration=self.duration(),
                **kw,
            )
        cell = cell_from_wrk(system, "spread", clients, result, ok)
        return cell | split.per_op(cell["ops"])

    def reference(self) -> dict:
        """services.spend from 8 threads (the HTTP ratios' denominator), its CPU split
        read over the workers' measured window only (not their Django start-up)."""
        split = CpuSplit(self.cpu_groups(None))
        cell = self.bench.run_workers(
            "ours_ref", "spread", 8, url=self.servers["product"].database_url, during=split.over
        )
        return cell.summary() | {"system": "ours_ref"} | split.per_op(cell.ops)

    def one_round(self, index: int) -> None:
        """The cells compared in the HTTP ratios, seconds apart: spend, peer, balance and
        the service-level spend they are measured against."""
        cells = [
            self.closed("product", "http", SPEND[0], 16),
            self.closed("floor", "http_floor", SPEND[0], 16),
            self.closed("peer", "http_peer", "/peer/withdraw", 16, body=PEER_BODY),
            self.closed("product", "http_balance", BALANCE, 16, method="GET", body=None, ok=200),
            self.closed(
                "floor", "http_floor_balance", BALANCE, 16, method="GET", body=None, ok=200
            ),
        ]
        cells.append(self.reference())
        for cell in cells:
            self.rounds.setdefault(cell["system"], []).append(cell)
            self.bench.log(
                f"    round {index + 1}: {cell['system']} → {cell['tps']} /s, "
                f"p50 {cell['p50_ms']} ms, p99 {cell['p99_ms']} ms"
                + (f", {cell['errors']} errors {cell['error_kinds']}" if cell["errors"] else "")
                + cpu_line(cell)
            )

    def finish_rounds(self) -> None:
        """Each compared row is its median round (by throughput), with every round kept."""
        for cells in self.rounds.values():
            ranked = sorted(cells, key=lambda c: c["tps"] or 0)
            median = dict(ranked[len(ranked) // 2])
            median["rounds_tps"] = [c["tps"] for c in cells]
            self.bench.record_summary(median)

    def settle(self) -> None:
        """VACUUM ANALYZE the product's and the floor's databases before the open loop:
        the closed-loop rounds just wrote thousands of rows into freshly cloned tables, and
        an autovacuum starting mid-cell lands in the tail (a long-running server's tables
        were vacuumed long ago)."""
        for label in ("product", "floor"):
            with psycopg.connect(self.servers[label].database_url, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE)")

    def open_loop(self, share: float) -> None:
        """Poisson arrivals at `share` of our saturated spend rate: to the product, then the
        same offered load to the floor — what the machine itself (cores, PostgreSQL's
        commits) adds to the tail, with no framework at all."""
        saturated = self.bench.tps_of("http", "spread", 16)
        rate = max(1.0, round(saturated * share, 1)) if saturated else 10.0
        for label, system in (("product", "http_open"), ("floor", "http_floor_open")):
            result = run_wrk(
                self.servers[label].base,
                self.tokens,
                path=SPEND[0],
                clients=OPEN_LOOP_CONNECTIONS,
                duration=max(self.duration(), 5.0),
                rate=rate,
            )
            cell = cell_from_wrk(
                system,
                f"{round(share * 100)}%",
                OPEN_LOOP_CONNECTIONS,
                result,
                201,
                offered_rps=rate,
                share_of_saturation=share,
                late=result["late"],
                p999_ms=round(result["percentiles_ms"]["99.9"], 2),
            )
            self.bench.record_summary(cell)


def cpu_line(cell: dict) -> str:
    """The cell's CPU split for the progress log (empty without /proc)."""
    split = cell.get("cpu_ms_per_op")
    if not split:
        return ""
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in split.items())
    busy = cell.get("machine_busy_share")
    return f"; CPU ms/op: {parts}" + (f"; machine busy {busy:.0%}" if busy is not None else "")


SPEND = ("/api/v1/wallet/spend", SPEND_BODY)
BALANCE = "/api/v1/wallet/balance"
PEER_BODY = json.dumps({"amount": db.PRICE})
FLOOR_APP = "bench.floor_app:application"


def steps(bench) -> list:
    http = HttpSteps(bench)
    rounds = bench.args.rounds or (1 if bench.args.quick else 3)
    bench.extra["http"] = {
        "server": "gunicorn -c gunicorn.conf.py, README production environment",
        "load_generator": "wrk (bench/wrk/load.lua)",
        "rounds": rounds,
    }
    out: list = [
        (
            "gunicorn -c gunicorn.conf.py (README production env): the product, the peer and"
            " the minimal WSGI floor",
            lambda: (
                http.start("product"),
                http.start("peer", "bench.peer.settings"),
                http.start("floor", app=FLOOR_APP),
            ),
        )
    ]
    for n in [n for n in CLOSED_CLIENTS if n in bench.args.http_clients and n != 16]:
        out.append(
            (
                f"HTTP POST /api/v1/wallet/spend · spread · {n} (wrk)",
                lambda n=n: bench.record_summary(http.closed("product", "http", SPEND[0], n)),
            )
        )
    for index in range(rounds):
        out.append(
            (
                f"HTTP round {index + 1}/{rounds}: spend, floor, peer, balance; services.spend",
                lambda index=index: http.one_round(index),
            )
        )
    out.append(("HTTP rounds: keep each row's median", http.finish_rounds))
    out.append(("VACUUM ANALYZE the servers' databases before the open loop", http.settle))
    for share in OPEN_LOOP_SHARES:
        out.append(
            (
                f"HTTP spend open loop at {round(share * 100)} % of saturation (wrk, Poisson):"
                " ours, then the floor at the same offered load",
                lambda share=share: http.open_loop(share),
            )
        )
    out.append(("stop gunicorn", http.stop))
    return out


# Worker model and connection handling, through the documented knobs only.
SYNC = {"GUNICORN_THREADS": "1"}
CONFIGS = {
    "sync 4 workers, CONN_MAX_AGE=0 (the old defaults)": {
        **SYNC,
        "GUNICORN_WORKERS": "4",
        "CONN_MAX_AGE": "0",
    },
    "default: gthread, cores × 4 threads": {},
    "sync 4 workers": {**SYNC, "GUNICORN_WORKERS": "4"},
    "sync 2 workers": {**SYNC, "GUNICORN_WORKERS": "2"},
    "sync 8 workers": {**SYNC, "GUNICORN_WORKERS": "8"},
    "gthread 4 workers × 4 threads": {"GUNICORN_WORKERS": "4"},
    "sync 4 workers, psycopg pool": {**SYNC, "GUNICORN_WORKERS": "4", "DATABASE_POOL_SIZE": "2"},
    "gthread cores × 4, psycopg pool": {"DATABASE_POOL_SIZE": "4"},
    "gthread cores × 2 threads": {"GUNICORN_THREADS": "2"},
    "gthread cores × 8 threads": {"GUNICORN_THREADS": "8"},
    "gthread cores × 4, CONN_HEALTH_CHECKS=0": {"CONN_HEALTH_CHECKS": "0"},
    "granian WSGI, cores × 4 blocking threads (bench extra)": {"SERVER": "granian"},
}


def config_steps(bench) -> list:
    """Each configuration in turn, for several rounds (the machine's speed drifts over
    minutes); every configuration's figures are its median round by spend throughput."""
    http = HttpSteps(bench)
    rounds = bench.args.rounds or (1 if bench.args.quick else 2)
    measured: dict[str, list[dict]] = {}
    results: dict[str, dict] = {}
    bench.extra["http_configs"] = results

    def measure(label: str, knobs: dict) -> None:
        http.start("product", **dict(knobs))
        spend = http.closed("product", "http", SPEND[0], 16)
        balance = http.closed(
            "product", "http_balance", BALANCE, 16, method="GET", body=None, ok=200
        )
        measured.setdefault(label, []).append({"spend": spend, "balance": balance})
        bench.log(
            f"    → spend {spend['tps']} /s (p99 {spend['p99_ms']} ms), "
            f"balance {balance['tps']} /s (p99 {balance['p99_ms']} ms)"
        )
        http.stop()

    def medians() -> None:
        for label, runs in measured.items():
            ranked = sorted(runs, key=lambda r: r["spend"]["tps"] or 0)
            results[label] = {
                "knobs": wanted[label],
                **ranked[len(ranked) // 2],
                "rounds_spend_tps": [r["spend"]["tps"] for r in runs],
                "rounds_balance_tps": [r["balance"]["tps"] for r in runs],
            }

    wanted = {
        label: knobs
        for label, knobs in CONFIGS.items()
        if not bench.args.configs or any(part in label for part in bench.args.configs.split(","))
    }
    out = []
    for index in range(rounds):
        for label, knobs in wanted.items():
            out.append(
                (
                    f"config round {index + 1}/{rounds}: {label}",
                    lambda label=label, knobs=knobs: measure(label, knobs),
                )
            )
    out.append(("configs: keep each one's median round", medians))
    return out
