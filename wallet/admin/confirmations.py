"""Signed confirmation tokens for the admin's two-step money flows (refund, adjust).

Step one (the form) does not move money: it issues a token that binds *exactly* what
the staff member asked for and the state they saw — the amount as a number (never a
blank meaning "everything"), the reason, a fresh one-time reference, the figure the
outcome depends on (what remained refundable, the wallet balance), the object and the
staff member. Step two shows that and books it, passing the state seen to the service,
which re-checks it under the wallet lock.

So a Back + resubmit can only (a) replay the confirmed booking (same reference: the
service answers with the original row), or (b) present a confirmation whose state is
no longer true, which is refused with an explanation. A second refund needs a new pass
through the form and a confirmation page that shows the earlier one.

Stateless (Django's signing with SECRET_KEY): it works the same on every server process.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.core import signing

from wallet.admin.forms import FORM_REFERENCE_PREFIX

SALT = "wallet.admin.confirmation.v1"


class ConfirmationError(Exception):
    """The token cannot be used; the message says why, for the page."""


def new_reference() -> str:
    return f"{FORM_REFERENCE_PREFIX}{uuid.uuid4()}"


def issue(kind: str, *, object_id: int, staff_id: int, **payload: Any) -> str:
    """A URL-safe token for `kind` ("refund", "adjust") of one object by one staff member."""
    return signing.dumps(
        {"kind": kind, "object": object_id, "staff": staff_id, **payload},
        salt=SALT,
        compress=True,
    )


def read(token: Any, kind: str, *, object_id: int, staff_id: int) -> dict[str, Any]:
    """The payload of a valid, unexpired token issued for this object and staff member."""
    if not isinstance(token, str) or not token:
        raise ConfirmationError("This confirmation link is incomplete. Start again from the form.")
    try:
        payload = signing.loads(
            token, salt=SALT, max_age=settings.ADMIN_CONFIRMATION_MAX_AGE_SECONDS
        )
    except signing.SignatureExpired as exc:
        minutes = settings.ADMIN_CONFIRMATION_MAX_AGE_SECONDS // 60
        raise ConfirmationError(
            f"This confirmation expired (they are valid for {minutes} minutes). Nothing was "
            "booked. Start again from the form."
        ) from exc
    except signing.BadSignature as exc:
        raise ConfirmationError(
            "This confirmation link is not valid. Nothing was booked. Start again from the form."
        ) from exc
    if (payload.get("kind"), payload.get("object"), payload.get("staff")) != (
        kind,
        object_id,
        staff_id,
    ):
        raise ConfirmationError(
            "This confirmation was issued for another record or another staff member. "
            "Nothing was booked. Start again from the form."
        )
    return payload
