"""HTTP spend benchmark: gunicorn with the production config (gunicorn.conf.py, 2 × cores
sync workers) on a fresh copy of the seeded database, loaded by bench.http_load from a
separate process, at 1, 8 and 16 clients, spread and hot."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench import db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    def __init__(self, bench, url: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(bench.workdir) / "gunicorn.log"
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.proc = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py"],
            cwd=db.ROOT,
            env=db.django_env(url, GUNICORN_BIND=f"127.0.0.1:{self.port}"),
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz; see {self.log}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _api_present() -> bool:
    return (db.ROOT / "wallet" / "api" / "views.py").exists()


def steps(bench) -> list:
    if not _api_present():

        def note() -> None:
            bench.extra["http"] = {"note": "REST API not available in this checkout"}

        return [("HTTP: REST API not in this checkout, skipped", note)]
    state: dict = {}
    modes = [m for m in ("spread", "hot") if m in bench.args.modes]
    clients = [n for n in (1, 8, 16) if n in bench.args.clients]

    def start() -> None:
        state["server"] = Gunicorn(bench, bench.fresh_run_db())
        bench.cleanups.append(lambda: state["server"].stop() if "server" in state else None)
        bench.extra["http"] = {"server": "gunicorn -c gunicorn.conf.py (sync workers)"}

    def stop() -> None:
        state.pop("server").stop()

    out = [("fresh database + gunicorn for HTTP", start)]
    for mode in modes:
        for n in clients:

            def go(mode=mode, n=n) -> None:
                server = state["server"]
                bench.record(
                    bench.run_workers(
                        "http", mode, n, module="bench.http_load", extra=(f"--url={server.base}",)
                    )
                )

            out.append((f"HTTP POST /api/v1/wallet/spend · {mode} · {n}", go))
    out.append(("stop gunicorn", stop))
    return out
