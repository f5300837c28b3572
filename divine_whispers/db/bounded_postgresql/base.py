"""Django's PostgreSQL backend with every database wait bounded (divine_whispers/db/bounds.py).

What it adds to Django's engine:

* the bounds in force as startup parameters of each direct connection (`options=-c …`),
  so every statement — autocommit reads included — runs under them at no extra round trip
  (inside a request always the request's, whichever block opens it: bounds.session_bounds);
  where the session does not carry the bounds in force (behind PgBouncer, which forwards
  no startup parameter: `session_carries_bounds=False`, or inside a named longer block),
  a `SET LOCAL` of the three settings as the first statement of each transaction;
* a client-side deadline on every statement, the CONN_HEALTH_CHECKS ping and the COMMIT
  (divine_whispers/db/watchdog.py): a server too stuck to cancel a statement has its
  socket cut, and the request's own budget (DATABASE_REQUEST_TIMEOUT_SECONDS) is never
  overrun — a statement that would start past it is refused before it is sent;
* a breaker: a connection attempt that timed out (or a ping that went unanswered) makes
  this process refuse new connections at once for DATABASE_CONNECT_RETRY_SECONDS; and a
  process makes one connection attempt at a time, the others waiting for it only while it
  is younger than SLOW_CONNECT_SECONDS; so a hung database does not pin one thread per
  request for the connect timeout, and the pages that need no database keep being served
  (bench/hung_database.py measures it).
Each failure is Django's OperationalError: the API answers 503 service_unavailable.
"""

from __future__ import annotations

import math
import re
import threading
import time
from contextlib import nullcontext
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.db.backends.postgresql import base
from psycopg import pq

from divine_whispers.db import bounds as bounds_module
from divine_whispers.db.watchdog import watched

_SET_TRANSACTION = re.compile(r"\s*SET\s+TRANSACTION\b", re.IGNORECASE)
SET_BOUNDS_SQL = (
    "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true), "
    "set_config('idle_in_transaction_session_timeout', %s, true)"
)


# A healthy database completes a connection in milliseconds; an attempt of this process
# still without an answer after this long means the database is not answering.
SLOW_CONNECT_SECONDS = 0.5
_POLL_SECONDS = 0.02


class _Breaker:
    """Per process: one connection attempt at a time; the others wait for it while it is
    young (a healthy connect takes milliseconds) and fail once it has had no answer for
    SLOW_CONNECT_SECONDS; after an attempt timed out, every attempt fails at once for
    DATABASE_CONNECT_RETRY_SECONDS. So a hung database pins one thread per process for
    the connect timeout, and the others for at most SLOW_CONNECT_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slot = threading.Lock()
        self._slot_since = 0.0
        self._open_until = 0.0

    @staticmethod
    def enabled() -> bool:
        return settings.DATABASE_CONNECT_RETRY_SECONDS > 0

    def check(self) -> None:
        if self.enabled() and time.monotonic() < self._open_until:
            raise OperationalError(
                "the database did not answer a moment ago; not trying again yet "
                "(DATABASE_CONNECT_RETRY_SECONDS)"
            )

    def begin(self) -> float:
        """Take the process's connection slot (returns when); OperationalError when the
        attempt holding it has gone unanswered for SLOW_CONNECT_SECONDS."""
        if not self.enabled():
            return time.monotonic()  # the breaker is off: every attempt on its own
        while not self._slot.acquire(timeout=_POLL_SECONDS):
            waited_for = time.monotonic() - self._slot_since
            if waited_for > SLOW_CONNECT_SECONDS:
                raise OperationalError(
                    "another connection attempt to the database has had no answer for "
                    f"{waited_for:.1f} s; not starting one more"
                )
            self.check()
        self._slot_since = time.monotonic()
        return self._slot_since

    def end(self) -> None:
        if self.enabled() and self._slot.locked():
            self._slot.release()

    def trip(self) -> None:
        with self._lock:
            self._open_until = time.monotonic() + settings.DATABASE_CONNECT_RETRY_SECONDS


BREAKER = _Breaker()


class DatabaseWrapper(base.DatabaseWrapper):
    # Whether the startup parameters reach the server (False behind PgBouncer).
    session_carries_bounds = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session_bounds: bounds_module.Bounds | None = None
        self.execute_wrappers.append(_bounded_execute)

    def get_connection_params(self) -> dict[str, Any]:
        params = super().get_connection_params()
        params.setdefault("connect_timeout", settings.DATABASE_CONNECT_TIMEOUT_SECONDS)
        if self.session_carries_bounds:
            wanted = bounds_module.session_bounds()
            params["options"] = " ".join(
                part for part in (params.get("options"), wanted.startup_options()) if part
            )
        return params

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        BREAKER.check()
        started = BREAKER.begin()
        try:
            BREAKER.check()  # the attempt before ours may have timed out meanwhile
            connection = super().get_new_connection(conn_params)
        except Exception:
            if time.monotonic() - started >= conn_params["connect_timeout"] * 0.9:
                BREAKER.trip()  # it timed out: a refused port fails fast and trips nothing
            raise
        finally:
            BREAKER.end()
        self.session_bounds = (
            bounds_module.session_bounds() if self.session_carries_bounds else None
        )
        return connection

    def is_usable(self) -> bool:
        """The CONN_HEALTH_CHECKS ping, within DATABASE_HEALTH_TIMEOUT_SECONDS."""
        if self.connection is None or self.connection.closed or self.connection.broken:
            return False
        deadline = time.monotonic() + settings.DATABASE_HEALTH_TIMEOUT_SECONDS
        with watched(deadline, self.connection.pgconn.socket) as cut:
            usable = super().is_usable()
        if cut.fired:
            BREAKER.trip()
        return usable

    def _commit(self) -> None:
        if self.connection is None:
            return None
        deadline = bounds_module.statement_deadline(bounds_module.current_bounds())
        with _watched(max(deadline, time.monotonic() + 0.1), self.connection):
            return super()._commit()

    def bounds_to_set(self, wanted: bounds_module.Bounds) -> bool:
        """Whether the next statement opens a transaction whose session does not already
        run under `wanted` (it then needs them by SET LOCAL)."""
        return not (
            self.session_bounds == wanted
            or self.get_autocommit()
            or self.connection.info.transaction_status != pq.TransactionStatus.IDLE
        )

    def set_bounds(self, wanted: bounds_module.Bounds, deadline: float) -> None:
        raw = self.connection
        values = list(wanted.server_settings().values())
        with _watched(deadline, raw), self.wrap_database_errors, raw.cursor() as cursor:
            cursor.execute(SET_BOUNDS_SQL, values)


def _bounded_execute(execute, sql, params, many, context):
    """Execute wrapper: refuse a statement past the request's budget, set the transaction's
    bounds when it opens one, and arm the watchdog while it runs."""
    connection = context["connection"]
    wanted = bounds_module.current_bounds()
    deadline = bounds_module.statement_deadline(wanted)
    if deadline <= time.monotonic():
        raise OperationalError("the request's database time budget is spent")
    to_set = connection.bounds_to_set(wanted)
    # `SET TRANSACTION …` must be a transaction's first statement: the bounds follow it.
    sets_transaction = to_set and _SET_TRANSACTION.match(sql) is not None
    if to_set and not sets_transaction:
        connection.set_bounds(wanted, deadline)
    with _watched(deadline, connection.connection):
        result = execute(sql, params, many, context)
    if sets_transaction:
        connection.set_bounds(wanted, deadline)
    return result


def _watched(deadline: float, raw: Any) -> Any:
    """The watchdog on `raw`'s socket until `deadline`; nothing to arm for no bound."""
    if deadline == math.inf:
        return nullcontext()
    return watched(deadline, raw.pgconn.socket)
