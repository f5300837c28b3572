"""The app served as docs/operations/production.md says, for tests and bench scripts that
must see what a client sees: `gunicorn -c gunicorn.conf.py` in a subprocess, DEBUG off,
the documented environment (long random secrets, HTTPS=1 behind a TLS proxy that sets
X-Forwarded-Proto), and raw HTTP over a socket.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
# What the TLS-terminating proxy adds to every request (SECURE_PROXY_SSL_HEADER=1).
PROXY_HEADERS = {"X-Forwarded-Proto": "https", "Host": "127.0.0.1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def production_env(database_url: str, port: int, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROMETHEUS_", "DJANGO_"))}
    env.update(
        DEBUG="0",
        DJANGO_SETTINGS_MODULE="divine_whispers.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        AUDIT_HMAC_KEY=secrets.token_urlsafe(32),
        DATABASE_URL=database_url,
        ALLOWED_HOSTS="127.0.0.1",
        HTTPS="1",
        SECURE_PROXY_SSL_HEADER="1",
        CONN_MAX_AGE="600",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        LOG_FORMAT="json",
    )
    env.update(overrides)
    return env


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float


def raw_request(port: int, data: bytes, timeout: float = 30.0) -> Response:
    """Send `data` as it is and read the answer until the server closes or the body ends."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
    return Response(status, headers, body, time.monotonic() - started)


def get(port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
    lines = [f"GET {path} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in {**PROXY_HEADERS, **(headers or {})}.items()]
    lines.append("Connection: close")
    return raw_request(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), timeout)


@contextmanager
def served(env: dict[str, str], log: Path, ready_path: str = "/api/schema/") -> Iterator[int]:
    """gunicorn -c gunicorn.conf.py with `env`; yields its port once `ready_path` answers."""
    port = int(env["GUNICORN_BIND"].rsplit(":", 1)[1])
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log.read_text()[-3000:]}")
            try:
                if get(port, ready_path, timeout=5).status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class HungDatabase:
    """A TCP server that accepts every connection and never answers: a database whose
    process is stuck (the kernel still completes the handshake)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1024)
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = None

    def __enter__(self) -> HungDatabase:
        import threading

        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)  # kept open, never read from nor written to

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/divine_whispers"
