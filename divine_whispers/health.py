"""Liveness that means something: 200 only when the database answers.

The body names each dependency's state. The cache only serves rate limits, which fail
open, so a cache that is down is reported (`"cache": "down"`) but keeps the answer 200:
a load balancer must not take healthy app servers out of service because Redis is away.
`payments` says whether purchases are on, and whether with a test-mode key.
"""

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse

from divine_whispers import cache_guard
from divine_whispers.db.bounds import database_bounds

UP, DOWN = "ok", "down"


def database_state() -> str:
    """One `SELECT 1` within DATABASE_HEALTH_TIMEOUT_SECONDS (a connection to make first
    waits at most DATABASE_CONNECT_TIMEOUT_SECONDS): `/healthz` answers within 3 s."""
    try:
        with database_bounds("health"), connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return DOWN
    return UP


def cache_state() -> str:
    """One read, bounded by CACHE_TIMEOUT_MS; a recent error in this process is enough."""
    if cache_guard.cache_skipped():
        return DOWN
    try:
        cache.get("healthz:probe")
    except cache_guard.CACHE_ERRORS as exc:
        cache_guard.note_cache_error(exc)
        return DOWN
    return UP


def payments_state() -> str:
    """`off` (PAYMENTS_ENABLED unset), `test_mode` (an sk_test_ key: a staging server that
    takes no real money) or `live`. Configuration only: the provider is not called."""
    if not settings.PAYMENTS_ENABLED:
        return "off"
    return "test_mode" if settings.STRIPE_SECRET_KEY.startswith("sk_test_") else "live"


def healthz(request: HttpRequest) -> JsonResponse:
    database = database_state()
    body = {
        "status": "ok" if database == UP else "unavailable",
        "database": database,
        "cache": cache_state(),
        "payments": payments_state(),
    }
    return JsonResponse(body, status=200 if database == UP else 503)
