"""Read routing: read-only endpoints may read from a streaming replica, nothing else does.

A query goes to the `replica` alias (DATABASE_REPLICA_URL) only when all of these hold:
  - the request is a GET/HEAD to a view that declares replica reads (`replica_actions`
    on a DRF viewset, or a Django admin changelist): history, job lists, admin lists;
  - the model is one the read-only endpoints list (ledger rows, wallets, jobs, job
    types, audit events) — never users, API tokens (even those in the wallet app) or
    sessions: a token revoked or issued on the primary must count on the next request;
  - no transaction is open on the primary: a read inside a write (locks, balance checks)
    always sees the primary;
  - the user did not write in the last REPLICA_READ_YOUR_WRITES_SECONDS (a marker in the
    shared cache, set after every unsafe request, so it holds on every app server; when
    the cache cannot be read the read goes to the primary);
  - the replica answers and its replay lag is at most REPLICA_MAX_LAG_SECONDS (measured
    once per request on the replica itself).
Everything else — every write, every money read, management commands and workers — uses
the primary. The decision is memoized per request, so one response never mixes sources.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse

from divine_whispers.cache_guard import CACHE_ERRORS, cache_skipped, note_cache_error

logger = logging.getLogger(__name__)

PRIMARY = "default"
REPLICA = "replica"
# An allowlist of models, not of apps: a model added to an app later (API tokens live in
# the wallet app) is read from the primary until someone decides otherwise.
REPLICA_MODELS = frozenset(
    {"wallet.transaction", "wallet.wallet", "jobs.job", "jobs.jobtype", "audit.auditevent"}
)
READ_METHODS = frozenset({"GET", "HEAD"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

# Replay lag in seconds, from the replica itself. 0 when everything received is applied
# (a synchronous standby has received every commit the primary acknowledged); unknown
# (NULL → treated as too stale) when it is not streaming from a primary.
LAG_SQL = """
SELECT CASE
  WHEN NOT pg_is_in_recovery() THEN 0
  WHEN NOT EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') THEN NULL
  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
  ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())
END
"""


@dataclass
class RequestRouting:
    """What one request may do; `decision` is None until its first eligible read."""

    request: HttpRequest
    read_only: bool = False
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)


_current: ContextVar[RequestRouting | None] = ContextVar("dw_request_routing", default=None)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def recent_write_key(user_id: int) -> str:
    return f"dw:recent-write:{user_id}"


def mark_recent_write(user_id: int) -> None:
    """Send this user's reads to the primary for a while (any app server reads it).

    The cache is guarded like the rate limits (divine_whispers/cache_guard.py): an
    outage is counted and logged there, and the write is never failed for it.
    """
    if cache_skipped():
        return
    try:
        cache.set(recent_write_key(user_id), 1, timeout=settings.REPLICA_READ_YOUR_WRITES_SECONDS)
    except CACHE_ERRORS as exc:
        note_cache_error(exc)


def wrote_recently(user_id: int) -> bool:
    """True when the marker is set — or when the cache cannot tell (then: primary).

    While the cache is down (and for CACHE_RETRY_SECONDS after an error) nobody's
    markers can be read, so every eligible read goes to the primary: read-your-writes
    fails safe, the replica just takes no load for that time.
    """
    if cache_skipped():
        return True
    try:
        return cache.get(recent_write_key(user_id)) is not None
    except CACHE_ERRORS as exc:
        note_cache_error(exc)
        return True


def replica_lag_seconds() -> float | None:
    """The replica's replay lag, or None when it does not answer or is not streaming."""
    try:
        with connections[REPLICA].cursor() as cursor:
            cursor.execute(LAG_SQL)
            (lag,) = cursor.fetchone()
    except DatabaseError:
        logger.warning("read routing: the replica does not answer; reading from the primary")
        connections[REPLICA].close()
        return None
    return None if lag is None else float(lag)


def _user_id(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user.pk


def decide(state: RequestRouting) -> str:
    """Replica or primary for this request's eligible reads (computed once)."""
    if state.decision is not None:
        return state.decision
    user_id = _user_id(state.request)
    lag = None
    if user_id is not None and wrote_recently(user_id):
        state.reasons.append("recent_write")
    else:
        lag = replica_lag_seconds()
        if lag is None or lag > settings.REPLICA_MAX_LAG_SECONDS:
            state.reasons.append("replica_lagging" if lag is not None else "replica_unavailable")
    state.decision = PRIMARY if state.reasons else REPLICA
    if state.decision == PRIMARY and lag is not None:
        logger.info("read routing: replica lag %.3f s over the bound; primary", lag)
    return state.decision


class ReplicaRouter:
    """Django database router (settings.DATABASE_ROUTERS); see the module docstring."""

    def db_for_read(self, model, **hints) -> str:
        state = _current.get()
        if (
            state is None
            or not state.read_only
            or not replica_configured()
            or model._meta.label_lower not in REPLICA_MODELS
            or connections[PRIMARY].in_atomic_block
        ):
            return PRIMARY
        return decide(state)

    def db_for_write(self, model, **hints) -> str:
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # the replica is a copy of the primary: same objects

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY


def view_reads_from_replica(view_func: Callable, method: str) -> bool:
    """Does this view declare that its `method` requests may read from the replica?

    DRF viewsets list their read-only actions in `replica_actions`; Django admin
    changelists (the admin's lists) qualify too.
    """
    if method not in READ_METHODS:
        return False
    cls = getattr(view_func, "cls", None)
    actions = getattr(view_func, "actions", None)
    if cls is not None and actions:
        return actions.get(method.lower(), actions.get("get")) in getattr(
            cls, "replica_actions", ()
        )
    return getattr(view_func, "__name__", "") == "changelist_view" and hasattr(
        view_func, "model_admin"
    )


class ReadRoutingMiddleware:
    """Scopes routing to one request and records writes for read-your-writes."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _current.set(RequestRouting(request))
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        if request.method not in SAFE_METHODS and replica_configured():
            user_id = _user_id(request)
            if user_id is not None:
                mark_recent_write(user_id)
        return response

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> None:
        state = _current.get()
        if state is not None:
            state.read_only = view_reads_from_replica(view_func, request.method or "")
        return None
