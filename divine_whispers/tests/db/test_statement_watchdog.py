"""A database that stops answering on a connection already open (the server froze after
the connection was made): PostgreSQL's own timeouts cannot fire, so the client-side
watchdog (divine_whispers/db/watchdog.py) must end the statement, the health-check ping
and the request's budget. Through a TCP proxy to the real test database that can freeze.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
from django.db import OperationalError, connection
from django.db.utils import load_backend

from divine_whispers.db import bounds
from divine_whispers.db.config import BOUNDED_ENGINE

pytestmark = pytest.mark.django_db(transaction=True)


class FreezableProxy:
    """Forwards bytes between clients and PostgreSQL until `frozen` is set, then holds
    every connection open and forwards nothing more."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sockets: list[socket.socket] = []
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.frozen.is_set():
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:  # the server sessions end, so the test database can go
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
            sock.close()


@pytest.fixture
def frozen_later(settings):
    settings.DATABASE_STATEMENT_TIMEOUT_SECONDS = 0.5
    settings.DATABASE_HEALTH_TIMEOUT_SECONDS = 0.5
    settings.DATABASE_CONNECT_RETRY_SECONDS = 0  # the breaker is not what is tested here
    s = connection.settings_dict
    proxy = FreezableProxy((s["HOST"] or "127.0.0.1", int(s["PORT"] or 5432)))
    wrapper = load_backend(BOUNDED_ENGINE).DatabaseWrapper(
        {**s, "ENGINE": BOUNDED_ENGINE, "HOST": "127.0.0.1", "PORT": str(proxy.port)},
        alias="through-proxy",
    )
    try:
        yield proxy, wrapper
    finally:
        proxy.frozen.clear()
        wrapper.close()
        proxy.close()
        _wait_for_sessions_to_end()


def _wait_for_sessions_to_end() -> None:
    """The backends behind the proxy notice their client is gone a moment later."""
    for _ in range(50):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.1)


def test_a_statement_on_a_frozen_connection_ends_at_its_bound(frozen_later):
    proxy, wrapper = frozen_later
    with bounds.database_bounds("request"), wrapper.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
        proxy.frozen.set()
        started = time.monotonic()
        with pytest.raises(OperationalError):
            cursor.execute("SELECT 1")
        elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 1.5, elapsed  # 0.5 s bound + 0.25 s grace, then the cut


def test_the_health_check_ping_of_a_frozen_connection_is_bounded(frozen_later):
    proxy, wrapper = frozen_later
    wrapper.ensure_connection()
    assert wrapper.is_usable()
    proxy.frozen.set()
    started = time.monotonic()
    assert not wrapper.is_usable()
    assert time.monotonic() - started < 1.5


def test_no_statement_runs_past_the_request_budget(frozen_later, settings):
    proxy, wrapper = frozen_later
    settings.DATABASE_STATEMENT_TIMEOUT_SECONDS = 30
    settings.DATABASE_REQUEST_TIMEOUT_SECONDS = 1.5  # 1.0 s of database work, 0.5 to answer
    budget = bounds.start_request_budget()
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            proxy.frozen.set()
            started = time.monotonic()
            with pytest.raises(OperationalError):
                cursor.execute("SELECT 1")
            assert time.monotonic() - started < 1.5
            with pytest.raises(OperationalError, match="budget is spent"):
                cursor.execute("SELECT 1")  # refused before it is sent
    finally:
        bounds.end_request_budget(budget)
