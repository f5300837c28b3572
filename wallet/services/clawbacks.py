"""Clawbacks: the points of a purchase taken back when the provider refunds or a buyer
disputes it, and given back exactly when the dispute is won or the refund fails.

One clawback per provider refund or dispute (`Clawback.source_id` is unique), booked
under the wallet lock: a `clawback` row takes what the balance holds, the rest becomes
the wallet's debt (the balance never goes below zero). A reversal books one
`clawback_reversal` row of the clawback's full points; like every credit it pays the
wallet's debt first (wallet/services/_booking.py), so the wallet ends exactly where it
would have been without the clawback.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from audit.services import build_wallet_event, record_system_event, save_events
from divine_whispers.db.transactions import run_atomically
from divine_whispers.errors import InsufficientBalance, NotRefundable
from wallet.models import (
    Clawback,
    ClawbackKind,
    LotKind,
    Purchase,
    PurchaseStatus,
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _debt, _lots, _provider
from wallet.services._observed import observed


class NotCredited(Exception):
    """A clawback of a purchase that was never credited: nothing to take back yet."""


@dataclass
class ClawbackResult:
    clawback: Clawback
    transaction: Transaction | None
    replayed: bool = False


def points_for(purchase: Purchase, money: int) -> int:
    """The purchase's points in proportion to `money` of its price (rounded down; all of
    them for the whole price)."""
    money = max(0, min(money, purchase.amount))
    return purchase.points * money // purchase.amount


def settle_status(purchase: Purchase) -> None:
    """The purchase's status from its standing clawbacks (caller holds its row lock)."""
    standing = Clawback.objects.filter(purchase=purchase, reversed=False)
    if purchase.credit_id is None:
        return
    if standing.filter(kind=ClawbackKind.DISPUTE).exists():
        status = PurchaseStatus.DISPUTED
    else:
        refunded = standing.filter(kind=ClawbackKind.REFUND).aggregate(m=Sum("money"))["m"] or 0
        if refunded >= purchase.amount:
            status = PurchaseStatus.REFUNDED
        elif refunded > 0:
            status = PurchaseStatus.PARTIALLY_REFUNDED
        else:
            status = PurchaseStatus.PAID
    if status != purchase.status:
        purchase.status = status
        purchase.save(update_fields=["status", "updated_at"])


def _points_owed(purchase: Purchase, kind: str, money: int) -> int:
    """Under the purchase's lock: a refund owes what takes the standing refunds' points to
    the points of their money plus this refund's; a dispute its proportion."""
    if kind != ClawbackKind.REFUND:
        return points_for(purchase, money)
    standing = Clawback.objects.filter(
        purchase=purchase, kind=ClawbackKind.REFUND, reversed=False
    ).aggregate(money=Sum("money"), points=Sum("points"))
    booked_money, booked_points = standing["money"] or 0, standing["points"] or 0
    return max(0, points_for(purchase, booked_money + money) - booked_points)


def _debt_event(wallet: Wallet, clawback: Clawback, owed: int) -> None:
    """A clawback the balance could not cover at all books no row: its debt is audited."""
    event = build_wallet_event(
        wallet=wallet,
        action="wallet.debt_recorded",
        actor=None,
        amount=-owed,
        balance_before=wallet.balance,
        balance_after=wallet.balance,
        metadata={"clawback": clawback.source_id, "purchase_id": clawback.purchase_id},
    )
    save_events([event])


@observed("clawback")
def claw_back(
    *, purchase_id: int, kind: str, source_id: str, money: int, covered_only: bool = False
) -> ClawbackResult:
    """Take back the points of `money` refunded or disputed of a purchase, once per
    `source_id` (the provider's refund or dispute id). A refund's points are its share of
    the cumulative refunded money (so several partial refunds add up to exactly the points
    of their total); a dispute's, its own proportion. `covered_only` (a staff refund)
    refuses, under the lock, a clawback the balance cannot cover instead of leaving debt."""

    def operation() -> ClawbackResult:
        found = Purchase.objects.get(pk=purchase_id)
        wallet = Wallet.objects.lock_for_user(found.user_id)
        purchase = Purchase.objects.select_for_update().get(pk=found.pk)
        earlier = Clawback.objects.filter(source_id=source_id).first()
        if earlier is not None:
            return ClawbackResult(earlier, earlier.transaction, replayed=True)
        if purchase.credit_id is None:
            raise NotCredited(f"purchase {purchase.pk} was never credited")
        owed = _points_owed(purchase, kind, money)
        if covered_only and owed > wallet.balance:
            raise InsufficientBalance(balance=wallet.balance, required=owed)
        now = timezone.now()
        description = f"{kind.capitalize()} {source_id} of purchase #{purchase.pk}"
        metadata = {"purchase_id": purchase.pk, "clawback": source_id}
        row = _debt.take(
            wallet=wallet, owed=owed, now=now, description=description, metadata=metadata
        )
        clawback = Clawback.objects.create(
            wallet=wallet, purchase=purchase, kind=kind, source_id=source_id,
            money=money, points=owed, transaction=row,
        )  # fmt: skip
        if row is None and owed > 0:
            _debt_event(wallet, clawback, owed)
            _booking.persist_wallets([wallet], now)
        settle_status(purchase)
        return ClawbackResult(clawback, row)

    return run_atomically(operation)


@observed("clawback_reversal")
def reverse_clawback(*, source_id: str) -> ClawbackResult | None:
    """Give back a clawback's points exactly, once (a dispute won, a refund failed); None
    when no clawback was booked for `source_id`."""

    def operation() -> ClawbackResult | None:
        found = Clawback.objects.filter(source_id=source_id).first()
        if found is None:
            return None
        wallet = Wallet.objects.lock_for_user(found.wallet.user_id)
        purchase = Purchase.objects.select_for_update().get(pk=found.purchase_id)
        clawback = Clawback.objects.select_for_update().get(pk=found.pk)
        if clawback.reversed:
            return ClawbackResult(clawback, clawback.reversal, replayed=True)
        now = timezone.now()
        row = None
        if clawback.points > 0:
            row = _booking.Booking(now).row(
                wallet,
                TransactionType.CLAWBACK_REVERSAL,
                clawback.points,
                description=f"Reversal of {clawback.kind} {source_id}",
            )
            metadata = {"purchase_id": purchase.pk, "clawback": source_id}
            _booking.commit_rows([row], None, now, metadata)
            _lots.credit_lot(wallet=wallet, transaction=row, kind=LotKind.PAID)
            _debt.settle(wallet=wallet, credit=row, actor=None, now=now)
        Clawback.objects.filter(pk=clawback.pk).update(reversal=row, reversed=True)
        clawback.reversal, clawback.reversed = row, True
        settle_status(purchase)
        return ClawbackResult(clawback, row)

    return run_atomically(operation)


@dataclass
class PurchaseRefund:
    clawback: Clawback
    refund: Any


def refund_purchase(*, purchase_id: int, actor: Any) -> PurchaseRefund:
    """Staff refund (`wallet.refund_purchase`) of what remains of a purchase: the points
    are clawed back first (never more than the wallet holds: else 402, nothing done), then
    the money is refunded through the provider, keyed by that clawback (idempotency key and
    metadata, so the refund's webhook books nothing twice). If the provider refuses or does
    not answer, the clawback is reversed at once and the error raised."""
    purchase = Purchase.objects.get(pk=purchase_id)
    standing = Clawback.objects.filter(purchase=purchase, reversed=False)
    money_left = purchase.amount - (standing.aggregate(m=Sum("money"))["m"] or 0)
    if purchase.credit_id is None or money_left <= 0:
        raise NotRefundable("Only a paid purchase with money left to refund can be refunded.")
    source_id = f"staff-refund-{purchase.pk}-{standing.count() + 1}"
    taken = claw_back(
        purchase_id=purchase.pk,
        kind=ClawbackKind.REFUND,
        source_id=source_id,
        money=money_left,
        covered_only=True,
    )
    record_system_event(
        action="purchase.refund_requested",
        actor=actor,
        amount=-taken.clawback.points,
        metadata={"purchase_id": purchase.pk, "clawback": source_id, "money": money_left},
    )
    try:
        refund = _provider.create_refund(
            payment_id=purchase.provider_payment_id, amount=money_left, clawback=source_id
        )
    except Exception:
        reverse_clawback(source_id=source_id)
        raise
    return PurchaseRefund(taken.clawback, refund)
