"""Transfers between users: a fast path of two statements, or the general path, under
both wallet locks.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from divine_whispers.db.faults import crash_point
from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.errors import (
    SelfTransfer,
    UnknownRecipient,
)
from divine_whispers.money import (
    DESCRIPTION_MAX_LENGTH,
    max_transfer_amount,
    validate_positive_amount,
    validate_reference,
    validate_text,
)
from wallet.models import (
    Transaction,
    TransactionType,
    Wallet,
    new_transfer_id,
)
from wallet.services import _booking, _checks, _debt, _fast_path, _lots
from wallet.services._observed import observed
from wallet.services.results import TransferResult


def _recipient_id(recipient: Any) -> int:
    message = "to_user_id must be a user id."
    recipient_id = _checks.id_of(recipient, _checks.User, message, field="to_user_id")
    if not _checks.User.objects.filter(pk=recipient_id, is_active=True).exists():
        raise UnknownRecipient(to_user_id=recipient_id)
    return recipient_id


def _without_jobs(*rows: Transaction) -> tuple[Transaction, ...]:
    """New transfer rows have no job: say so, so reading `row.job` costs no query."""
    for row in rows:
        Transaction.job.related.set_cached_value(row, None)
    return rows


@dataclass(frozen=True)
class _TransferCall:
    """A transfer's checked input: what the fast and the general path both read."""

    sender: Any
    sender_id: int
    recipient_id: int
    amount: int
    reference_id: str | None
    fingerprint: str
    description: str

    def rows(
        self, source: Wallet, target: Wallet, now: datetime, actor: Any
    ) -> tuple[Transaction, Transaction]:
        """The pair of ledger rows, the same on the fast and the general path; only the
        debit carries the reference."""
        booking = _booking.Booking(now, actor, self.reference_id, self.fingerprint)
        common = {"description": self.description, "transfer_id": new_transfer_id()}
        debit = booking.row(source, TransactionType.TRANSFER_OUT, -self.amount, **common)
        credit = booking.unreferenced().row(
            target, TransactionType.TRANSFER_IN, self.amount, **common
        )
        return debit, credit


def _transfer_fast(call: _TransferCall) -> TransferResult | None:
    """The common transfer in two statements (inside the operation's transaction).

    1. `lock_for_transfer`: lock both wallets in ascending id order, reserve row ids;
    2. `book_transfer`: insert both ledger rows and both audit events, debit and credit,
       guarded by the balance, the velocity rule and the reference's uniqueness.
    Returns None whenever the transfer is not the plain successful case (a wallet does
    not exist yet, not enough points, a large amount to flag, a replay, the velocity
    limit): the general path then handles it under the same locks, exactly as before.
    """
    locked = _fast_path.lock_for_transfer(call.sender_id, call.recipient_id)
    if locked is None:
        return None
    crash_point("transfer.locked")
    source, target, amount = locked.source, locked.target, call.amount
    if source.balance < amount or amount >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
        return None
    now = timezone.now()
    actor = _checks.acting_user(call.sender, call.sender_id)
    debit, credit = call.rows(source, target, now, actor)
    debit.pk, credit.pk = locked.debit_id, locked.credit_id
    events = _booking.audit_events_for([debit, credit], actor)
    rows = [debit, credit, *events]
    balances = _fast_path.book_transfer(
        source, target, amount=amount, rows=rows, reference_id=call.reference_id, now=now
    )
    if balances is None:
        return None
    if balances != (source.balance, target.balance):  # impossible under the locks
        raise AssertionError(f"transfer {debit.transfer_id}: balances {balances}")
    crash_point("transfer.before_commit")
    _fast_path.mark_saved(debit, credit)
    return TransferResult(*_without_jobs(debit, credit))


@observed("transfer")
def transfer(
    *,
    sender: Any,
    recipient: Any,
    amount: Any,
    reference_id: Any = None,
    description: Any = "",
) -> TransferResult:
    """Move points between two users: one transfer_out/transfer_in pair summing to zero."""
    amount = validate_positive_amount(amount, maximum=max_transfer_amount())
    reference_id = validate_reference(reference_id)
    description = validate_text(
        description, field="description", required=False, max_length=DESCRIPTION_MAX_LENGTH
    )
    sender_id = _checks.checked_user_id(sender)
    recipient_id = _recipient_id(recipient)
    if recipient_id == sender_id:
        raise SelfTransfer()
    fingerprint = _checks.fingerprint_of(
        op="transfer", to=recipient_id, amount=amount, description=description
    )
    call = _TransferCall(
        sender, sender_id, recipient_id, amount, reference_id, fingerprint, description
    )

    def operation() -> TransferResult | Rejection:
        fast = _transfer_fast(call)
        if fast is not None:
            return fast
        wallets = Wallet.objects.lock_for_users([sender_id, recipient_id])
        source, target = wallets[sender_id], wallets[recipient_id]
        crash_point("transfer.locked")
        earlier = _checks.find_replay(
            source, TransactionType.TRANSFER_OUT, reference_id, fingerprint
        )
        if earlier is not None:
            credit = Transaction.objects.get(
                transfer_id=earlier.transfer_id, type=TransactionType.TRANSFER_IN
            )
            return TransferResult(earlier, credit, replayed=True)
        now = timezone.now()
        actor = source.user
        _lots.expire_due(wallet=source, now=now)
        rejection = _checks.debit_refusal(
            source, amount, action="wallet.transfer", actor=actor, now=now
        )
        if rejection is not None:
            return rejection
        debit, credit = call.rows(source, target, now, actor)
        _booking.commit_rows([debit, credit], actor, now, crash_at="transfer.after_rows")
        drawn = _lots.draw(wallet=source, transaction=debit, amount=amount, now=now)
        _lots.carry(wallet=target, transaction=credit, allocations=drawn)
        _debt.settle(wallet=target, credit=credit, actor=actor, now=now)
        crash_point("transfer.before_commit")
        return TransferResult(*_without_jobs(debit, credit))

    return run_atomically(operation)
