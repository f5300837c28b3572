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

Hot-wallet HTTP rows are not run: with the production defaults one user may spend 30 times
a minute (velocity rule) and send 600 requests a minute (throttle), so a hot closed loop
would measure refusals.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import db

LUA = Path(__file__).resolve().parent / "wrk" / "load.lua"
SPEND_BODY = json.dumps({"job_type": db.JOB_TYPE_CODE})
CLOSED_CLIENTS = (1, 4, 8, 16, 32)
OPEN_LOOP_SHARES = (0.25, 0.5, 0.75)
OPEN_LOOP_CONNECTIONS = 32
# Redis database of the bench's throttle counters (apart from the tests' and make run's).
BENCH_CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/13")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(database_url: str, port: int, **knobs: str) -> dict[str, str]:
    """The README's production environment, plus only the documented knobs passed in.

    Secrets are the bench process's (bench.run sets random ones once, so the seeded audit
    chain and the server's agree).
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SECRET_KEY", "AUDIT_HMAC_KEY")
    }
    env.update(
        DEBUG="0",
        DATABASE_URL=database_url,
        CACHE_URL=BENCH_CACHE_URL,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        PYTHONPATH=str(db.ROOT),
    )
    env.update(knobs)
    return env


class Gunicorn:
    """`gunicorn -c gunicorn.conf.py` in its own process group, stopped by stop()."""

    def __init__(self, workdir: Path, database_url: str, label: str, **knobs: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"gunicorn-{label}.log"
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py"],
            cwd=db.ROOT,
            env=production_env(database_url, self.port, **knobs),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        tail = self.log.read_text()[-2000:] if self.log.exists() else ""
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


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
        raise SystemExit("wrk is needed (apt-get install wrk; scripts/bench.sh installs it as root)")
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
        self.server: Gunicorn | None = None
        self.tokens: Path | None = None
        bench.cleanups.append(self.stop)

    def duration(self) -> float:
        return self.bench.duration

    def start(self, label: str, settings_module: str | None = None, **knobs: str) -> None:
        self.stop()
        if settings_module:
            knobs["DJANGO_SETTINGS_MODULE"] = settings_module
        self.tokens = write_tokens(self.bench.workdir, self.bench.wallets)
        self.server = Gunicorn(self.bench.workdir, self.bench.fresh_run_db(), label, **knobs)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def closed(self, system: str, path: str, clients: int, **kw) -> dict:
        ok = kw.get("ok", 201)
        result = run_wrk(
            self.server.base, self.tokens, path=path, clients=clients, duration=self.duration(), **kw
        )
        cell = cell_from_wrk(system, "spread", clients, result, ok)
        self.bench.record_summary(cell)
        return cell

    def open_loop(self, share: float) -> None:
        saturated = self.bench.tps_of("http", "spread", 16)
        rate = max(1.0, round(saturated * share, 1)) if saturated else 10.0
        result = run_wrk(
            self.server.base,
            self.tokens,
            path="/api/v1/wallet/spend",
            clients=OPEN_LOOP_CONNECTIONS,
            duration=max(self.duration(), 5.0),
            rate=rate,
        )
        cell = cell_from_wrk(
            "http_open",
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


def steps(bench) -> list:
    http = HttpSteps(bench)
    clients = [n for n in CLOSED_CLIENTS if n in bench.args.http_clients]
    out: list = [
        (
            "gunicorn -c gunicorn.conf.py (README production env) on a fresh database",
            lambda: http.start("product"),
        )
    ]
    for n in clients:
        out.append(
            (
                f"HTTP POST /api/v1/wallet/spend · spread · {n} (wrk)",
                lambda n=n: http.closed("http", "/api/v1/wallet/spend", n),
            )
        )
    out.append(
        (
            "HTTP GET /api/v1/wallet/balance · spread · 16 (wrk)",
            lambda: http.closed(
                "http_balance", "/api/v1/wallet/balance", 16, method="GET", body=None, ok=200
            ),
        )
    )
    for share in OPEN_LOOP_SHARES:
        out.append(
            (
                f"HTTP spend open loop at {round(share * 100)} % of saturation (wrk, Poisson)",
                lambda share=share: http.open_loop(share),
            )
        )
    out.append(
        (
            "peer: DRF view + token auth + dj-wallet withdraw, same gunicorn config",
            lambda: http.start("peer", "bench.peer.settings"),
        )
    )
    out.append(
        (
            "HTTP POST /peer/withdraw · spread · 16 (wrk)",
            lambda: http.closed("http_peer", "/peer/withdraw", 16, body='{"amount": 10}'),
        )
    )
    out.append(("stop gunicorn", http.stop))
    return out


# Worker model and connection handling, through the documented knobs only.
CONFIGS = {
    "sync 4 workers, CONN_MAX_AGE=0 (before)": {"CONN_MAX_AGE": "0"},
    "sync 4 workers (default)": {},
    "sync 2 workers": {"GUNICORN_WORKERS": "2"},
    "sync 8 workers": {"GUNICORN_WORKERS": "8"},
    "gthread 2 workers × 4 threads": {"GUNICORN_WORKERS": "2", "GUNICORN_THREADS": "4"},
    "gthread 4 workers × 4 threads": {"GUNICORN_THREADS": "4"},
    "sync 4 workers, psycopg pool": {"DATABASE_POOL_SIZE": "2"},
    "gthread 2 × 4, psycopg pool": {
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "4",
        "DATABASE_POOL_SIZE": "4",
    },
}


def config_steps(bench) -> list:
    http = HttpSteps(bench)
    results: dict[str, dict] = {}
    bench.extra["http_configs"] = results

    def measure(label: str, knobs: dict) -> None:
        http.start("config", **knobs)
        spend = http.closed(f"cfg:{label}", "/api/v1/wallet/spend", 16)
        balance = http.closed(
            f"cfg:{label}:balance", "/api/v1/wallet/balance", 16, method="GET", body=None, ok=200
        )
        results[label] = {"knobs": knobs, "spend": spend, "balance": balance}
        # config rows are context, not table cells
        bench.cells = [c for c in bench.cells if not c.system.startswith("cfg:")]
        http.stop()

    return [
        (f"config: {label}", lambda label=label, knobs=knobs: measure(label, knobs))
        for label, knobs in CONFIGS.items()
    ]
