"""Broken Redis servers for the cache-outage tests: one that refuses, one that hangs."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def refused_url() -> str:
    """A Redis URL on a local port where nothing listens (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/1"


@contextmanager
def hung_server() -> Iterator[str]:
    """A server that accepts connections and never answers: yields its Redis URL."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)  # kept open, never read, never answered

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.getsockname()[1]}/1"
    finally:
        stop.set()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        server.close()


def redis_cache_settings(url: str, timeout_ms: int = 100) -> dict:
    """CACHES as settings.py builds them for CACHE_URL=url."""
    from divine_whispers.cache_guard import cache_options

    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": url,
            "OPTIONS": cache_options(url, timeout_ms),
        }
    }
