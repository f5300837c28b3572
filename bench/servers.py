"""The HTTP servers of the benchmarks: gunicorn exactly as the README's production section
starts it (`gunicorn -c gunicorn.conf.py`, the documented environment and nothing else),
and granian for the side-by-side with gunicorn gthread (bench/http_bench.py,
bench/ab_http.py, bench/profile_http.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench import db

# Redis database of the bench's throttle counters (apart from the tests' and make run's).
BENCH_CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/13")


def free_port() -> int:
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

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        label: str,
        app: str | None = None,
        root: Path = db.ROOT,
        **knobs: str,
    ) -> None:
        """`app` replaces the config's wsgi_app (the floor); `root` is the source tree
        served (another checkout for a before/after in one run, bench/ab_http.py)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"gunicorn-{label}.log"
        self.database_url = database_url
        gunicorn = Path(sys.executable).with_name("gunicorn")
        env = production_env(database_url, self.port, **knobs)
        env["PYTHONPATH"] = str(root)
        self.proc = subprocess.Popen(
            [str(gunicorn), "-c", "gunicorn.conf.py", *([app] if app else [])],
            cwd=root,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        if not wait_healthy(self.base, self.proc):
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


class Granian(Gunicorn):
    """The same app under granian (Rust HTTP server, WSGI interface) for the side-by-side
    with gunicorn gthread: as many workers and threads per worker as gunicorn.conf.py's
    defaults (cores × 4), the same production environment, metrics in multi-process mode
    in a folder of its own (gunicorn.conf.py's job under gunicorn)."""

    def __init__(self, workdir: Path, database_url: str, label: str, **knobs: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(workdir) / f"granian-{label}.log"
        self.database_url = database_url
        metrics_dir = Path(tempfile.mkdtemp(prefix="dw-granian-metrics-", dir=workdir))
        env = production_env(database_url, self.port, **knobs)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        granian = Path(sys.executable).with_name("granian")
        self.proc = subprocess.Popen(
            [
                str(granian),
                "--interface",
                "wsgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                knobs.get("GUNICORN_WORKERS", str(os.cpu_count() or 1)),
                "--blocking-threads",
                knobs.get("GUNICORN_THREADS", "4"),
                "divine_whispers.wsgi:application",
            ],
            cwd=db.ROOT,
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60) -> bool:
    """True once `base`/healthz answers 200; False if the server exits or never does."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False
