"""Lots: every credit books its points into a lot, every debit draws from lots in the
contract's order and records what it took (allocation rows), and expired lots give up
their remainder as one `expiry` row each.

Private to the wallet.services package, and the one place (with the fast path's single
statement, wallet/services/_fast_path.py) that writes lots and allocations. Every
function here expects the caller to hold the lock of the wallet it touches
(`Wallet.objects.lock_for_user(s)`) and to run inside the operation's transaction; the
ledger rows it names must already be inserted (`_booking.commit_rows`).

The API other operations build on (stable; keyword arguments only):

- `credit_lot(*, wallet, transaction, kind, expires_at=None, campaign="", amount=None,
  origin=None) -> Lot` — the lot of a credit (`transaction.amount` points unless
  `amount` says otherwise). Paid points never expire.
- `expire_due(*, wallet, now) -> list[Transaction]` — book the `expiry` row of every
  lot of the wallet past its expiry that still holds points (reference `lot:<id>`,
  unique per wallet: exactly once). Call it right after locking, before checking the
  balance of a debit, so the balance checked is the one that can be drawn.
- `draw(*, wallet, transaction, amount, now) -> list[Allocation]` — take `amount`
  points for the debit `transaction` from the wallet's live lots in draw order
  (promotional first, soonest expiry first, never-expiring last, then the oldest;
  expired lots never). Raises InsufficientBalance when the live lots do not cover it
  (the caller checked the balance after `expire_due`, so only a bug gets there).
- `book(*, wallet, transaction, now) -> list[Allocation]` — a signed row with no lot
  rules of its own (an adjustment): a credit books a paid lot, a debit draws.
- `carry(*, wallet, transaction, allocations) -> list[Lot]` — the lots of a transfer's
  credit: one per lot the debit drew from, of the same kind, expiry and campaign.
- `give_back(*, wallet, refund, spend, now) -> list[Transaction]` — a refund's points
  back to the lots its spend drew from (the last drawn first); an expired lot's share
  goes to a new lot that continues it and expires at once. Returns the expiry rows.
- `expiring_share(*, spend, amount, now) -> int` — read-only: how much of a refund of
  `amount` would expire at once (for a confirmation page).
- `allocations_of(transaction) -> list[Allocation]` — what a booked row drew, as
  stored (an idempotent replay returns this, never a new plan).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db import transaction as db_transaction
from django.db.models import F, Sum

from divine_whispers.errors import InsufficientBalance
from divine_whispers.observability import metrics
from wallet.models import (
    Allocation,
    Lot,
    LotKind,
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.services import _booking


def expiry_reference(lot_id: int) -> str:
    """The reference of a lot's expiry row: unique per wallet and type, so a lot's
    expiry is booked once whoever books it."""
    return f"lot:{lot_id}"


def credit_lot(
    *,
    wallet: Wallet,
    transaction: Transaction,
    kind: str,
    expires_at: datetime | None = None,
    campaign: str = "",
    amount: int | None = None,
    origin: Lot | None = None,
) -> Lot:
    """A new lot holding a credit's points (all of `transaction.amount` by default)."""
    points = transaction.amount if amount is None else amount
    return Lot.objects.create(
        wallet=wallet,
        kind=kind,
        amount=points,
        remaining=points,
        expires_at=None if kind == LotKind.PAID else expires_at,
        campaign=campaign,
        source=transaction,
        origin=origin,
        created_at=transaction.created_at,
    )


def expire_due(*, wallet: Wallet, now: datetime) -> list[Transaction]:
    """Book one `expiry` row per lot of `wallet` past its expiry with points left."""
    due = list(Lot.objects.filter(wallet=wallet).due(now).order_by("expires_at", "id"))
    if not due:
        return []
    rows = []
    for lot in due:
        booking = _booking.Booking(now, None, expiry_reference(lot.pk))
        description = f"Expiry of lot {lot.pk}" + (f" ({lot.campaign})" if lot.campaign else "")
        rows.append(
            booking.row(wallet, TransactionType.EXPIRY, -lot.remaining, description=description)
        )
    _booking.commit_rows(rows, None, now, {"reason": "expiry"})
    allocations = [
        Allocation(transaction=row, lot=lot, amount=lot.remaining)
        for row, lot in zip(rows, due, strict=True)
    ]
    Allocation.objects.bulk_create(allocations)
    Lot.objects.filter(pk__in=[lot.pk for lot in due]).update(remaining=0)
    points = sum(lot.remaining for lot in due)
    # Counted once committed, whichever operation booked them (a spend, a refund, the job).
    db_transaction.on_commit(lambda: metrics.record_points(TransactionType.EXPIRY, points))
    return rows


def draw(
    *, wallet: Wallet, transaction: Transaction, amount: int, now: datetime
) -> list[Allocation]:
    """Take `amount` points from the wallet's live lots, in the contract's order."""
    left, allocations = amount, []
    for lot in Lot.objects.filter(wallet=wallet).live(now).in_draw_order():
        take = min(lot.remaining, left)
        allocations.append(Allocation(transaction=transaction, lot=lot, amount=take))
        left -= take
        if left == 0:
            break
    if left:
        raise InsufficientBalance(balance=amount - left, required=amount)
    for allocation in allocations:
        Lot.objects.filter(pk=allocation.lot_id).update(
            remaining=F("remaining") - allocation.amount
        )
        allocation.lot.remaining -= allocation.amount
    return Allocation.objects.bulk_create(allocations)


def book(*, wallet: Wallet, transaction: Transaction, now: datetime) -> list[Allocation]:
    """The lots side of a signed row with no lot rules of its own (an adjustment): a
    credit books a paid lot, a debit draws in the usual order."""
    if transaction.amount > 0:
        credit_lot(wallet=wallet, transaction=transaction, kind=LotKind.PAID)
        return []
    return draw(wallet=wallet, transaction=transaction, amount=-transaction.amount, now=now)


def carry(*, wallet: Wallet, transaction: Transaction, allocations: list[Allocation]) -> list[Lot]:
    """The lots a transfer's credit books: each drawn lot continues on the other side."""
    return [
        credit_lot(
            wallet=wallet,
            transaction=transaction,
            kind=allocation.lot.kind,
            expires_at=allocation.lot.expires_at,
            campaign=allocation.lot.campaign,
            amount=allocation.amount,
            origin=allocation.lot,
        )
        for allocation in allocations
    ]


def _open_shares(spend: Transaction) -> list[tuple[Lot, int]]:
    """(lot, points not yet given back) for each lot the spend drew from, draw order."""
    drawn = list(Allocation.objects.filter(transaction=spend).select_related("lot").order_by("id"))
    refunds = Transaction.objects.filter(related_transaction=spend, type=TransactionType.REFUND)
    returned: dict[int, int] = defaultdict(int)
    for lot_id, total in (
        Allocation.objects.filter(transaction__in=refunds)
        .values_list("lot_id")
        .annotate(total=Sum("amount"))
    ):
        returned[lot_id] += total
    for lot_id, total in (
        Lot.objects.filter(source__in=refunds, origin__isnull=False)
        .values_list("origin_id")
        .annotate(total=Sum("amount"))
    ):
        returned[lot_id] += total
    return [(a.lot, a.amount - returned[a.lot_id]) for a in drawn if a.amount > returned[a.lot_id]]


def give_back(
    *, wallet: Wallet, refund: Transaction, spend: Transaction, now: datetime
) -> list[Transaction]:
    """Return a refund's points to the lots its spend drew from, the last drawn first.

    A lot that is still live gets them back (an allocation row of the refund); an
    expired lot's share goes to a new lot continuing it (a lot expires once), which
    expires at once, in this transaction. Points of a spend booked before lots existed
    (no allocations) come back as a paid lot. Returns the expiry rows booked.
    """
    left, restored = refund.amount, []
    for lot, share in reversed(_open_shares(spend)):
        take = min(share, left)
        left -= take
        if lot.expires_at is not None and lot.expires_at <= now:
            credit_lot(
                wallet=wallet,
                transaction=refund,
                kind=lot.kind,
                expires_at=lot.expires_at,
                campaign=lot.campaign,
                amount=take,
                origin=lot,
            )
        else:
            restored.append(Allocation(transaction=refund, lot=lot, amount=take))
            Lot.objects.filter(pk=lot.pk).update(remaining=F("remaining") + take)
        if left == 0:
            break
    Allocation.objects.bulk_create(restored)
    if left:
        credit_lot(wallet=wallet, transaction=refund, kind=LotKind.PAID, amount=left)
    return expire_due(wallet=wallet, now=now)


def expiring_share(*, spend: Transaction, amount: int, now: datetime) -> int:
    """How many of `amount` refunded points `give_back` would hand to expired lots now
    (and so expire at once). Read-only: what a confirmation page shows beforehand."""
    left, expiring = amount, 0
    for lot, share in reversed(_open_shares(spend)):
        take = min(share, left)
        left -= take
        if lot.expires_at is not None and lot.expires_at <= now:
            expiring += take
        if left == 0:
            break
    return expiring


def allocations_of(transaction: Any) -> list[Allocation]:
    """The allocations a booked row recorded, as stored, in the order they were made."""
    return list(Allocation.objects.filter(transaction=transaction).select_related("lot"))
