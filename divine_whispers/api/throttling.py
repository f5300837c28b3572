"""DRF throttles whose rates are read from settings at request time.

DRF's stock classes copy DEFAULT_THROTTLE_RATES when they are imported; reading the
setting per request lets tests and operators change it without re-importing. Counters
live in the default cache (CACHE_URL), so with Redis every app server shares them.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from divine_whispers.client_ip import client_ip


class UserThrottle(UserRateThrottle):
    def get_rate(self) -> str:
        return settings.API_THROTTLE_RATE


class AnonThrottle(AnonRateThrottle):
    def get_rate(self) -> str:
        return settings.API_ANON_THROTTLE_RATE

    def get_ident(self, request) -> str:
        """The client address as everything else sees it (X-Forwarded-For only through
        TRUSTED_PROXY_COUNT proxies); DRF's own reads a client-supplied header."""
        return client_ip(request) or ""
