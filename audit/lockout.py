"""Login lockout (django-axes): the answer a locked-out login gets, and its audit event.

Axes counts failed logins per (username, client address) in the database, so every
process agrees; after AUTH_LOCKOUT_FAILURES failures within AUTH_LOCKOUT_MINUTES the pair
is refused — even with the right password — until the window has passed. A lockout is
recorded once, when it begins, as `auth.lockout` on the audit system chain: concurrent
failures that all reach the limit race on a unique key (audit.models.LockoutRecord), and
only the winner writes the event. `Retry-After` says what is left of the window.
"""

from __future__ import annotations

import math
from typing import Any

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max, Min
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from audit.models import LockoutRecord
from audit.services import record_system_event

CODE = "throttled"
MESSAGE = "Too many failed logins for this username from this address; try again later."


def _attempts(username: str | None, ip_address: str | None):
    return AccessAttempt.objects.filter(username=username, ip_address=ip_address)


def _retry_after_seconds(request: HttpRequest, credentials: Any) -> int:
    """What is left of the window: it ends AXES_COOLOFF_TIME after the last counted failure
    (failures during a lockout are not counted). The full window when that is unknown."""
    window = settings.AXES_COOLOFF_TIME
    username = get_client_username(request, credentials)
    try:
        last = _attempts(username, getattr(request, "axes_ip_address", None)).aggregate(
            last=Max("attempt_time")
        )["last"]
    except DatabaseError:
        last = None
    left = window if last is None else last + window - timezone.now()
    return max(1, math.ceil(min(left, window).total_seconds()))


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: 429 with Retry-After; the JSON error body under /api/."""
    retry_after = _retry_after_seconds(request, credentials)
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
    ip = ip_address or ""
    first = _attempts(username, ip_address).aggregate(first=Min("id"))["first"] or 0
    with transaction.atomic():
        try:
            with transaction.atomic():  # its own savepoint: the IntegrityError stays in it
                LockoutRecord.objects.create(
                    username=username or "", ip_address=ip, attempt_id=first
                )
        except IntegrityError:
            return  # another failure of the same burst already recorded this lockout
        _record(request, username, ip_address)


def _record(request: HttpRequest, username: str, ip_address: str) -> None:
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
