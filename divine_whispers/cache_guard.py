"""The cache is an optimisation, never a single point of failure.

Rate limits and /healthz talk to the cache (Redis in production) through this module.
When the cache refuses connections, or answers slower than CACHE_TIMEOUT_MS (the client's
connect and read timeouts), the caller carries on as if no limit were reached (fail
open), and `note_cache_error` records the outage:

* it is logged at most once per CACHE_ERROR_LOG_INTERVAL_SECONDS per process, with the
  number of errors since the last line, so an outage does not flood the logs;
* the process-local counter below exists only for that log line. The Prometheus counter
  (`divine_whispers_cache_errors_total`, observability) is fed from `note_cache_error`.

After an error, callers skip the cache for CACHE_RETRY_SECONDS in this process (a small
circuit breaker), so a hung Redis costs one timeout per process per interval instead of
one per request. Nothing here must agree between processes: each one decides for itself.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

try:  # django-redis wraps redis-py's errors in its own exception.
    from django_redis.exceptions import ConnectionInterrupted
except ImportError:  # pragma: no cover - django-redis is a runtime dependency
    ConnectionInterrupted = RedisError

logger = logging.getLogger("divine_whispers.cache")

# What a broken or slow cache raises (OSError: refused/reset sockets, timeouts).
CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, ConnectionInterrupted, OSError)


@dataclass
class _State:
    errors_total: int = 0  # since the process started (for the log line only)
    errors_unlogged: int = 0
    last_logged_at: float | None = None
    skip_until: float = 0.0


_state = _State()
_lock = threading.Lock()


def note_cache_error(exc: BaseException) -> None:
    """Record one failed cache call: count it, maybe log it, open the breaker."""
    from divine_whispers.observability import metrics  # not at import: settings import this module

    metrics.record_cache_error()
    now = time.monotonic()
    with _lock:
        _state.errors_total += 1
        _state.errors_unlogged += 1
        _state.skip_until = now + settings.CACHE_RETRY_SECONDS
        due = (
            _state.last_logged_at is None
            or now - _state.last_logged_at >= settings.CACHE_ERROR_LOG_INTERVAL_SECONDS
        )
        if not due:
            return
        count, _state.errors_unlogged, _state.last_logged_at = _state.errors_unlogged, 0, now
    logger.warning(
        "cache unavailable, serving without rate limits (%d error(s) since the last "
        "report): %s: %s",
        count,
        type(exc).__name__,
        exc,
    )


def cache_skipped() -> bool:
    """True while the breaker is open: a recent error says not to wait for the cache."""
    return time.monotonic() < _state.skip_until


def errors_total() -> int:
    return _state.errors_total


def reset() -> None:
    """Forget every error (tests)."""
    global _state
    with _lock:
        _state = _State()


def cache_options(cache_url: str, timeout_ms: int) -> dict:
    """OPTIONS for the default cache: Redis gets connect/read timeouts of `timeout_ms`."""
    if not cache_url.split(":", 1)[0].lower().startswith(("redis", "rediss", "valkey")):
        return {}
    seconds = max(timeout_ms, 1) / 1000
    return {"SOCKET_CONNECT_TIMEOUT": seconds, "SOCKET_TIMEOUT": seconds}
