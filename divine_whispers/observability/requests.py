"""One line per request in the log, and the HTTP request / latency metrics.

The route is the URL pattern that matched (`api/v1/jobs/<pk>`-like), never the raw
path: a path holds ids, so it would make one time series per object and could carry
whatever a client typed into it. For the same reason a method outside HTTP's own list is
logged and counted as `OTHER`. Every value of the line is therefore safe by construction
(constants, numbers, a URL pattern, the sanitized request id): it skips the log's regex
redaction (divine_whispers/observability/logs.py).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from divine_whispers.observability import metrics
from divine_whispers.observability.logs import safe_fields

logger = logging.getLogger("divine_whispers.request")

UNMATCHED_ROUTE = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_REGEX_NOISE = re.compile(r"[\^$]|\\\.|\(\?P<(\w+)>[^)]*\)")


def route_of(request: HttpRequest) -> str:
    """The matched URL pattern, readable: `api/v1/wallet/transactions/<pk>`."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return UNMATCHED_ROUTE

    def clean(found: re.Match) -> str:
        if found.group(1):
            return f"<{found.group(1)}>"
        return "." if found.group(0) == "\\." else ""

    return _REGEX_NOISE.sub(clean, match.route)


def _user_id(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)
    return user.pk if user is not None and user.is_authenticated else None


class ObservabilityMiddleware:
    """Runs after RequestContextMiddleware, so the request id is already known."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        response = self.get_response(request)
        seconds = time.monotonic() - started
        route = route_of(request)
        method = request.method if request.method in METHODS else "OTHER"
        status = response.status_code
        metrics.record_request(route, method, status, seconds)
        level = logging.ERROR if status >= 500 else logging.INFO
        logger.log(
            level,
            "%s %s %s",
            method,
            route,
            status,
            extra=safe_fields(
                event="request",
                request_id=getattr(request, "request_id", None),
                user_id=_user_id(request),
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
            ),
        )
        return response
