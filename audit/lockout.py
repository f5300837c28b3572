"""Login lockout (django-axes): the answer a locked-out login gets, and its audit event.

Axes counts failed logins per (username, client address) in the database, so every
process agrees; after AUTH_LOCKOUT_FAILURES failures within AUTH_LOCKOUT_MINUTES the pair
is refused — even with the right password — until the window has passed. A lockout is
recorded once, when it begins, as `auth.lockout` on the audit system chain.
"""

from __future__ import annotations

import math
from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from audit.services import record_system_event

CODE = "throttled"
MESSAGE = "Too many failed logins for this username from this address; try again later."


def _retry_after_seconds() -> int:
    return max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; the JSON error body under /api/."""
    retry_after = _retry_after_seconds()
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {
                "error": {
                    "code": CODE,
                    "message": MESSAGE,
                    "details": {"retry_after_seconds": retry_after},
                }
            },
            status=429,
        )
    else:
        response = HttpResponse(MESSAGE, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after)
    return response


@receiver(user_locked_out, dispatch_uid="divine-whispers-audit-lockout")
def audit_lockout(sender: Any, request: HttpRequest, username: str, ip_address: str, **kwargs):
    """Write `auth.lockout` when a lockout begins (not for each refused attempt after it).

    Axes sends the signal both when the failure limit is reached and for every attempt
    refused during the lockout; only the first computes `axes_failures_since_start`.
    """
    if getattr(request, "axes_failures_since_start", None) is None:
        return
    record_system_event(
        action="auth.lockout",
        metadata={
            "username": username,
            "ip": ip_address,
            "path": request.path,
            "failures": request.axes_failures_since_start,
            "minutes": settings.AUTH_LOCKOUT_MINUTES,
        },
    )
