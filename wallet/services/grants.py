"""Grants: promotional points given by marketing or finance staff, optionally expiring,
booked at once or (past the approval threshold) kept for a second staff member.

Part of the wallet.services package (see its __init__): the only code that writes money.
A grant shares the approvals of adjustments (wallet/services/adjustments.py): the same
threshold rule, the same request rows (kind `grant`), the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.errors import ValidationFailed
from divine_whispers.money import (
    CAMPAIGN_MAX_LENGTH,
    REASON_MAX_LENGTH,
    validate_positive_amount,
    validate_reference,
    validate_text,
)
from wallet.models import ApprovalKind, Lot, Transaction, TransactionType, Wallet
from wallet.services import _checks, _debt, _grants, _minting
from wallet.services._observed import observed
from wallet.services.adjustments import (
    ApprovalResult,
    _approval_cause,
    _AskedAdjustment,
    _find_approval_replay,
    _open_approval,
)


@dataclass
class GrantResult:
    transaction: Transaction
    lot: Lot
    replayed: bool = False


def validate_grant_expiry(value: Any, now: datetime) -> datetime | None:
    """An aware datetime in the future, or None (the points never expire)."""
    if value is None:
        return None
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise ValidationFailed(
            "expires_at must be a date-time with a time zone.", field="expires_at"
        )
    if value <= now:
        raise ValidationFailed("expires_at must be in the future.", field="expires_at")
    return value


@observed("grant")
def grant(
    *,
    user: Any,
    amount: Any,
    reason: Any,
    actor: AbstractBaseUser | None,
    expires_at: Any = None,
    campaign: Any = "",
    reference_id: Any = None,
) -> GrantResult | ApprovalResult:
    """Give `amount` promotional points to `user`, expiring at `expires_at` (if given).

    At or past the approval threshold the grant becomes a pending approval request
    (kind `grant`) that another staff member approves or rejects, as for adjustments.
    A reference replays the grant (or request) it named; with other terms it is refused.
    """
    amount = validate_positive_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    campaign = validate_text(
        campaign, field="campaign", required=False, max_length=CAMPAIGN_MAX_LENGTH
    )
    reference_id = validate_reference(reference_id)
    expires_at = validate_grant_expiry(expires_at, timezone.now())
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(
        op="grant", amount=amount, reason=reason, expires_at=expires_at, campaign=campaign
    )
    requester_id = _minting.actor_id(actor)
    asked = _AskedAdjustment(
        amount,
        reason,
        reference_id,
        fingerprint,
        kind=ApprovalKind.GRANT,
        grant_expires_at=expires_at,
        campaign=campaign,
    )

    def operation() -> GrantResult | ApprovalResult | Rejection:
        # The requester's own wallet is locked too (one ascending statement): it serialises
        # their cumulative sum across wallets and processes, as for adjustments.
        wallets = Wallet.objects.lock_for_users({user_id, requester_id} - {None})
        wallet = wallets[user_id]
        if requester_id == user_id:
            return _minting.refuse_self_dealing(
                wallet, actor, action="wallet.grant", amount=amount, why="own_wallet"
            )
        requested = _find_approval_replay(wallet, reference_id, fingerprint)
        if requested is not None:
            return ApprovalResult(requested, replayed=True)
        earlier = _checks.find_replay(wallet, TransactionType.GRANT, reference_id, fingerprint)
        if earlier is not None:
            return GrantResult(earlier, Lot.objects.get(source=earlier), replayed=True)
        now = timezone.now()
        cause = _approval_cause(wallet, amount, actor, now)
        if cause is not None:
            if requester_id is None:
                raise ValidationFailed(
                    "A grant that needs approval must name the staff member asking for it.",
                    field="actor",
                )
            return ApprovalResult(_open_approval(wallet, asked, actor=actor, now=now, cause=cause))
        row, lot = _grants.book_grant(wallet, asked, actor=actor, now=now)
        _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        return GrantResult(row, lot)

    return run_atomically(operation)
