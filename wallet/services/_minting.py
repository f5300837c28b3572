"""Minting controls: who may create points, and when one person's credits need a second.

The contract's rules (Minting controls), stated once for every operation that credits:
  * staff never deposit (`wallet.deposit_points` is the payment service account's alone);
  * nobody credits, refunds into or decides anything about their own wallet, and a staff
    member's wallet changes only through a request a superuser other than the requester
    approves (`self_dealing_forbidden`);
  * the approval threshold is cumulative: the positive amounts one staff member booked
    alone within `WALLET_APPROVAL_WINDOW_HOURS`, and those booked alone into one wallet,
    count together with the next one.

The sums are read from the ledger under locks that serialise them: the target wallet's
(its sum) and the requester's own wallet (their sum, whatever wallet they credit), both
taken in one ascending wallet id statement by the caller. What a second person approved
is linked to its approval request and does not count again.

Private to the wallet.services package.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum

from divine_whispers.db.transactions import Rejection
from divine_whispers.errors import PermissionRefused, SelfDealingForbidden
from wallet.models import Transaction, TransactionStatus, TransactionType, Wallet
from wallet.services import _checks

# The credits one person may book alone, up to the threshold: positive adjustments and
# promotional grants count together.
COUNTED_TYPES: tuple[str, ...] = (TransactionType.ADJUSTMENT, TransactionType.GRANT)


def actor_id(actor: Any) -> int | None:
    """The id of an authenticated actor; None for the system (operators, the worker)."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor.pk


def is_staff(user: Any) -> bool:
    """Staff for these rules: anyone who can reach the back-office, superusers included."""
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


def wallet_owner(wallet: Wallet) -> Any:
    """The wallet's owner, with only the flags these rules read."""
    return get_user_model().objects.only("is_staff", "is_superuser").get(pk=wallet.user_id)


def owner_is_staff(wallet: Wallet) -> bool:
    """Whether the wallet belongs to a staff member (read under the wallet's lock)."""
    return is_staff(wallet_owner(wallet))


DEALING_MESSAGES = {
    "own_wallet": "You may not move points into your own wallet or decide about it.",
    "staff_wallet": "A staff member's wallet changes only through an approval request "
    "that a superuser other than the requester approves.",
}


def decision_barrier(owner: Any, actor: Any) -> str | None:
    """Why `actor` may not decide (or directly credit) a change to `owner`'s wallet:
    `own_wallet`, `staff_wallet` (only a superuser may), or None."""
    if actor_id(actor) == owner.pk:
        return "own_wallet"
    if is_staff(owner) and not getattr(actor, "is_superuser", False):
        return "staff_wallet"
    return None


def refuse_self_dealing(
    wallet: Wallet, actor: Any, *, action: str, amount: int | None, why: str, **metadata: Any
) -> Rejection:
    """The audited refusal (`suspicious.self_dealing` on the wallet's chain)."""
    return _checks.reject(
        wallet,
        SelfDealingForbidden(DEALING_MESSAGES[why], reason=why, wallet_user_id=wallet.user_id),
        action="suspicious.self_dealing",
        actor=actor,
        amount=amount,
        attempted=action,
        reason=why,
        **metadata,
    )


def credit_refusal(wallet: Wallet, actor: Any, *, action: str, amount: int) -> Rejection | None:
    """Why `actor` may not credit `wallet` directly (a refund), audited; None when they may.

    Their own wallet: never. A staff member's wallet: only a superuser (the second
    person being the superuser, who is not the owner). The system (no actor) may.
    """
    if actor_id(actor) is None:
        return None
    why = decision_barrier(wallet_owner(wallet), actor)
    if why is None:
        return None
    return refuse_self_dealing(wallet, actor, action=action, amount=amount, why=why)


def deposit_refusal(wallet: Wallet, actor: Any, amount: int) -> Rejection | None:
    """Deposits are the payment service account's: never by staff, never into one's own
    wallet (each refusal audited). The system (no actor) may: operators' tools."""
    acting = actor_id(actor)
    if acting is None:
        return None
    if is_staff(actor):
        return _checks.reject(
            wallet,
            PermissionRefused(
                "Deposits are made by the payment service account only; no staff member "
                "may deposit points.",
                permission="wallet.deposit_points",
            ),
            action="wallet.deposit.refused",
            actor=actor,
            amount=amount,
            reason="staff_deposit",
        )
    if acting == wallet.user_id:
        return refuse_self_dealing(
            wallet, actor, action="wallet.deposit", amount=amount, why="own_wallet"
        )
    return None


def self_dealing_message(owner: Any, actor: Any) -> str | None:
    """For the pages: what refuses `actor` a decision about `owner`'s wallet, or None."""
    why = decision_barrier(owner, actor)
    return None if why is None else f"{DEALING_MESSAGES[why]} (self_dealing_forbidden)"


@dataclass(frozen=True)
class BookedAlone:
    """Positive counted credits booked without a second person within the window."""

    by_requester: int
    into_wallet: int

    def would_reach(self, amount: int) -> bool:
        """Whether booking `amount` alone would take either sum to the threshold or beyond."""
        threshold = settings.WALLET_APPROVAL_THRESHOLD
        if threshold <= 0 or amount <= 0:
            return False
        return max(self.by_requester, self.into_wallet) + amount >= threshold


def window_start(now: datetime) -> datetime:
    return now - timedelta(hours=settings.WALLET_APPROVAL_WINDOW_HOURS)


def _alone_sum(now: datetime, **where: Any) -> int:
    rows = Transaction.objects.filter(
        type__in=COUNTED_TYPES,
        status=TransactionStatus.SUCCESS,
        amount__gt=0,
        created_at__gte=window_start(now),
        approval__isnull=True,  # approved by a second person: counted once, there
        **where,
    )
    return rows.aggregate(total=Sum("amount"))["total"] or 0


def booked_alone(*, requester_id: int | None, wallet_id: int, now: datetime) -> BookedAlone:
    """The two sums; authoritative only while the caller holds both wallets' locks."""
    by_requester = 0 if requester_id is None else _alone_sum(now, actor_id=requester_id)
    return BookedAlone(by_requester, _alone_sum(now, wallet_id=wallet_id))
