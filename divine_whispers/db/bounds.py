"""How long any database wait may last: connecting, a lock, a statement, an idle transaction.

A database that accepts connections but never answers must not hang a request (contract:
Failures, "Slow or hung database"). Each wait has its own bound, from the settings:

* connecting — psycopg's `connect_timeout` (DATABASE_CONNECT_TIMEOUT_SECONDS);
* waiting for a row lock — PostgreSQL's `lock_timeout`;
* running a statement — PostgreSQL's `statement_timeout`, and on the client the statement
  watchdog (divine_whispers/db/watchdog.py), for a server too stuck to enforce its own;
* an open transaction left idle — `idle_in_transaction_session_timeout`;
* the whole request — DATABASE_REQUEST_TIMEOUT_SECONDS from its arrival: no statement
  starts or runs past it.

A set of bounds is a `Bounds` profile. HTTP requests use `request` (the request-context
middleware opens it), other processes `command` (DATABASE_COMMAND_TIMEOUT_SECONDS, 0 = the
server's own settings: a migration is not cut short); the few things that need longer
than a request say so by name — `worker` (run_jobs), `verify_ledger`, `export` (the admin's
streamed CSV files) and `report` (the finance report) — either for the whole process
(`process_bounds`, in a command) or around one block (`database_bounds`). The engine
(divine_whispers/db/bounded_postgresql) applies them: as startup parameters of each
direct connection, and, where a connection's session does not already carry the bounds
in force (behind PgBouncer, which does not forward startup parameters, or in a named
block), with `SET LOCAL` as the transaction's first statement.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class Bounds:
    name: str
    statement_seconds: float
    lock_seconds: float
    idle_seconds: float
    # Whether the request's own budget (DATABASE_REQUEST_TIMEOUT_SECONDS) still applies.
    within_request: bool = True

    def server_settings(self) -> dict[str, str]:
        """PostgreSQL's names and values (milliseconds), for SET LOCAL or `-c`."""
        return {
            "statement_timeout": _ms(self.statement_seconds),
            "lock_timeout": _ms(self.lock_seconds),
            "idle_in_transaction_session_timeout": _ms(self.idle_seconds),
        }

    def startup_options(self) -> str:
        """libpq's `options` startup parameter: the bounds as session defaults."""
        return " ".join(f"-c {name}={value}" for name, value in self.server_settings().items())


def _ms(seconds: float) -> str:
    """Milliseconds for PostgreSQL; 0 (no bound) stays 0."""
    return "0" if seconds <= 0 else str(max(1, round(seconds * 1000)))


def _long(name: str, seconds: float) -> Bounds:
    """A named long job: one bound for its statements, lock waits and idle transactions."""
    return Bounds(name, seconds, seconds, seconds, within_request=False)


def named_bounds(name: str) -> Bounds:
    """The profile `name`, read from the settings now (tests may override them)."""
    s = settings
    if name == "command":  # any other process: manage.py migrate, cleanup_pending, tests…
        return _long("command", s.DATABASE_COMMAND_TIMEOUT_SECONDS)
    if name == "request":
        return Bounds(
            "request",
            s.DATABASE_STATEMENT_TIMEOUT_SECONDS,
            s.DATABASE_LOCK_TIMEOUT_SECONDS,
            s.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS,
        )
    if name == "health":  # /healthz: one `SELECT 1`, answered within 3 s in all
        health = s.DATABASE_HEALTH_TIMEOUT_SECONDS
        return Bounds("health", health, health, health)
    seconds = {
        "worker": s.DATABASE_WORKER_TIMEOUT_SECONDS,
        "verify_ledger": s.DATABASE_VERIFY_LEDGER_TIMEOUT_SECONDS,
        "export": s.DATABASE_EXPORT_TIMEOUT_SECONDS,
        "report": s.DATABASE_REPORT_TIMEOUT_SECONDS,
    }[name]
    return _long(name, seconds)


_process_profile = "command"
_block_profile: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "database_bounds", default=None
)


def current_bounds() -> Bounds:
    return named_bounds(_block_profile.get() or _process_profile)


@contextmanager
def process_bounds(name: str) -> Iterator[Bounds]:
    """A command's bounds, for every thread of the process (run_jobs, verify_ledger).

    A connection opened inside carries them as its session defaults; one opened before
    (a test's) gets them by SET LOCAL in each transaction. Restored on exit.
    """
    global _process_profile
    chosen, previous = named_bounds(name), _process_profile
    _process_profile = name
    try:
        yield chosen
    finally:
        _process_profile = previous


@contextmanager
def database_bounds(name: str) -> Iterator[Bounds]:
    """The profile `name` for the transactions begun inside this block (and the
    statements' client-side watchdog). Open the block before the transaction."""
    token = _block_profile.set(name)
    try:
        yield named_bounds(name)
    finally:
        _block_profile.reset(token)


# --- the request's budget ---------------------------------------------------------------

# Time kept back from DATABASE_REQUEST_TIMEOUT_SECONDS to build and send the 503 itself.
ANSWER_MARGIN_SECONDS = 0.5
_request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "database_request_deadline", default=None
)


def session_bounds() -> Bounds:
    """The bounds a connection opened now carries as its session defaults.

    Inside a request, the request's, whatever named block (`/healthz`'s `health`, a
    report, an export) happens to open it: a persistent connection outlives that block and
    serves the next requests, which would otherwise each pay a `SET LOCAL` round trip per
    transaction, and run their autocommit reads under the block's bounds (a 1 s health
    bound, a 300 s export bound) until the connection is recycled. The block's own
    statements still get its bounds (SET LOCAL in its transactions; the client's deadline
    on every statement). Outside a request: the bounds in force.
    """
    return named_bounds("request") if _request_deadline.get() is not None else current_bounds()


def start_request_budget() -> tuple[contextvars.Token, contextvars.Token]:
    """The request arrived: its database work runs under the `request` bounds and must end
    DATABASE_REQUEST_TIMEOUT_SECONDS (less the margin to answer) from now."""
    budget = settings.DATABASE_REQUEST_TIMEOUT_SECONDS - ANSWER_MARGIN_SECONDS
    deadline = _request_deadline.set(time.monotonic() + max(budget, 0.1))
    return deadline, _block_profile.set("request")


def end_request_budget(tokens: tuple[contextvars.Token, contextvars.Token]) -> None:
    deadline, profile = tokens
    _block_profile.reset(profile)
    _request_deadline.reset(deadline)


def statement_deadline(bounds: Bounds) -> float:
    """When the statement about to run must have answered (time.monotonic())."""
    if bounds.statement_seconds <= 0:
        deadline = math.inf  # no bound of its own
    else:
        grace = min(WATCHDOG_GRACE_SECONDS, bounds.statement_seconds / 2)
        deadline = time.monotonic() + bounds.statement_seconds + grace
    request = _request_deadline.get()
    if bounds.within_request and request is not None:
        deadline = min(deadline, request)
    return deadline


# The server cancels a statement at statement_timeout and says so (57014); the client
# watchdog steps in only this much later (at most half the bound), when the server could
# not even do that.
WATCHDOG_GRACE_SECONDS = 1.0
