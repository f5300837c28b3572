"""A real `gunicorn -c gunicorn.conf.py` for tests: production settings, a free port.

Tests that prove how the service behaves as deployed (database roles, static files, the
control socket, the production drill) start gunicorn exactly as the operations pages
say, with only the environment production needs, and talk to it over HTTP.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GUNICORN = BIN / "gunicorn"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_url(database: str | None = None, user: str | None = None) -> str:
    """A URL of the test database's server: the test database itself by default, else
    `database` (as `user`, without password, when given)."""
    from django.db import connection

    s = connection.settings_dict
    auth = user or s["USER"]
    if user is None and s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    host, port = s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgres://{auth}@{host}:{port}/{database or s['NAME']}"


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production process: DEBUG off, random secrets, JSON logs."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PROMETHEUS_", "GUNICORN_", "MIGRATE_", "DJANGO_SETTINGS"))
    }
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=database_url,
        LOG_FORMAT="json",
    )
    env.update(extra)
    return env


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 3xx is an answer to look at
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def request(
    url: str, *, headers: dict | None = None, body: dict | None = None, method: str | None = None
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one HTTP request, redirects not followed; never raises
    for an HTTP error status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(req, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`python manage.py ARGS` in its own process with `env`."""
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"manage.py {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


@dataclass
class Gunicorn:
    process: subprocess.Popen
    base: str
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


def wait_until_up(base: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    """Until `base`/healthz answers 200 (gunicorn or `make run`); fails with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if request(f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the server did not answer within {seconds} s:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def gunicorn(env: dict[str, str], log_dir: Path, *args: str) -> Iterator[Gunicorn]:
    """`gunicorn -c gunicorn.conf.py ARGS` on a free port; stopped (SIGTERM) at the end."""
    port = free_port()
    env = {"GUNICORN_WORKERS": "1", "GUNICORN_THREADS": "2", **env}
    env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = log_dir / f"gunicorn-{port}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, process, stderr_path)
        yield Gunicorn(process, base, stderr_path)
    finally:
        stop(process)
