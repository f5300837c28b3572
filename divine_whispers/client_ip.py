"""The one answer to "which address is the client?", used by throttles, audit and lockout.

`X-Forwarded-For` is written by whoever sends the request, so it is believed only through
`TRUSTED_PROXY_COUNT` reverse proxies of our own (default 0: never). With N trusted
proxies, each appended the address it received the request from, so the client is the
N-th address from the right; anything further left was supplied by the client and is
ignored. A missing or malformed entry falls back to the socket address.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, trusting X-Forwarded-For only through our own proxies."""
    remote = request.META.get("REMOTE_ADDR") or None
    trusted = settings.TRUSTED_PROXY_COUNT
    if trusted <= 0:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(forwarded) < trusted:
        return remote
    return _valid_ip(forwarded[-trusted]) or remote


def axes_client_ip(request: HttpRequest, *args: Any) -> str | None:
    """AXES_CLIENT_IP_CALLABLE: lockouts are keyed on the same address as everything else."""
    return client_ip(request)
