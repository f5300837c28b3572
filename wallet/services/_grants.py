"""Booking a grant: its ledger row and its promotional lot, shared by a grant booked at
once (wallet/services/grants.py) and one a second staff member approved
(wallet/services/adjustments.py).

Private to the wallet.services package.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from audit.models import AuditEvent
from divine_whispers.errors import ValidationFailed
from wallet.models import Lot, LotKind, Transaction, TransactionType, Wallet
from wallet.services import _booking, _lots


def refuse_lapsed(asked: Any, now: datetime) -> None:
    """A grant request approved after the expiry it asked for would book points that
    are already expired: refused, nothing booked (reject it and grant again)."""
    if asked.grant_expires_at is not None and asked.grant_expires_at <= now:
        raise ValidationFailed(
            "The grant's expiry has passed while it waited for approval; reject it and "
            "grant again with a new expiry.",
            field="expires_at",
        )


def book_grant(
    wallet: Wallet,
    asked: Any,
    *,
    actor: Any,
    now: datetime,
    metadata: dict | None = None,
    more_events: Callable[[Transaction], list[AuditEvent]] | None = None,
) -> tuple[Transaction, Lot]:
    """The `grant` row of `asked` (amount, reason, reference, fingerprint, grant_expires_at,
    campaign) with its audit event, and the promotional lot holding its points.
    `more_events(row)`: further events on the wallet's chain naming the booked row."""
    booking = _booking.Booking(now, actor, asked.reference_id, asked.fingerprint)
    row = booking.row(wallet, TransactionType.GRANT, asked.amount, description=asked.reason)
    details = {"reason": asked.reason, "campaign": asked.campaign, **(metadata or {})}
    if asked.grant_expires_at is not None:
        details["expires_at"] = asked.grant_expires_at.isoformat()
    _booking.commit_rows(
        [row],
        actor,
        now,
        details,
        more_events=None if more_events is None else (lambda: more_events(row)),
    )
    lot = _lots.credit_lot(
        wallet=wallet,
        transaction=row,
        kind=LotKind.PROMOTIONAL,
        expires_at=asked.grant_expires_at,
        campaign=asked.campaign,
    )
    return row, lot
