"""DRF throttles whose rates are read from settings at request time.

DRF's stock classes copy DEFAULT_THROTTLE_RATES when they are imported; reading the
setting per request lets tests and operators change it without re-importing. Counters
live in the default cache (CACHE_URL), so with Redis every app server shares them; they
are atomic (api/rate_counter.py) so the limit holds exactly across processes, and a
cache that is down or slow lets the request through (divine_whispers/cache_guard.py).
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from divine_whispers import cache_guard
from divine_whispers.api import rate_counter
from divine_whispers.client_ip import client_ip


class AtomicFailOpenThrottle(SimpleRateThrottle):
    """SimpleRateThrottle with an atomic fixed-window counter and a fail-open cache."""

    retry_after: int | None = None

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None or cache_guard.cache_skipped():
            return True
        try:
            found = rate_counter.hit(self.cache, key, int(self.duration))
        except cache_guard.CACHE_ERRORS as exc:
            cache_guard.note_cache_error(exc)
            return True  # fail open: the cache is an optimisation, not a gate
        if found.count <= self.num_requests:
            return True
        self.retry_after = found.retry_after
        return False

    def wait(self) -> float | None:
        return self.retry_after


class UserThrottle(AtomicFailOpenThrottle, UserRateThrottle):
    def get_rate(self) -> str:
        return settings.API_THROTTLE_RATE


class AnonThrottle(AtomicFailOpenThrottle, AnonRateThrottle):
    def get_rate(self) -> str:
        return settings.API_ANON_THROTTLE_RATE

    def get_ident(self, request) -> str:
        """The client address as everything else sees it (X-Forwarded-For only through
        TRUSTED_PROXY_COUNT proxies); DRF's own reads a client-supplied header."""
        return client_ip(request) or ""
