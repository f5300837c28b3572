"""Refunds of a spend (staff) and of a job (failure or cancel, at most once per job).

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Sum
from django.utils import timezone

from divine_whispers.db.faults import crash_point
from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.errors import (
    JobNotCancellable,
    NotFound,
    NotRefundable,
    RefundExceedsOriginal,
)
from divine_whispers.money import (
    REASON_MAX_LENGTH,
    validate_positive_amount,
    validate_reference,
    validate_text,
)
from jobs.models import Job, JobStatus
from wallet.models import (
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _checks, _debt, _lots, _minting
from wallet.services._observed import observed
from wallet.services.results import JobRefundResult, OperationResult


def _validated_refund_amount(amount: Any) -> int | None:
    if amount is None:
        return None
    return validate_positive_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)


def refundable_remaining(spend_txn: Transaction) -> int:
    """Points of a spend not yet refunded (read-only; authoritative only under the lock)."""
    refunded = (
        Transaction.objects.successful()
        .filter(related_transaction=spend_txn, type=TransactionType.REFUND)
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    return -spend_txn.amount - refunded


def refund_expiring_share(spend_txn: Transaction, amount: int) -> int:
    """Of a refund of `amount` points of `spend_txn`, how many go back to lots that have
    expired and so expire at once (read-only, for the admin's confirmation)."""
    return _lots.expiring_share(spend=spend_txn, amount=amount, now=timezone.now())


def _mark_job_after_refund(original: Transaction, status: str, now: datetime) -> Job | None:
    job = Job.objects.select_for_update(of=("self",)).filter(transaction=original).first()
    if job is not None and job.status != status:
        job.status = status
        job.finished_at = job.finished_at or now
        job.save(update_fields=["status", "finished_at", "updated_at"])
    return job


def _book_refund(
    wallet: Wallet,
    original: Transaction,
    booking: _booking.Booking,
    *,
    amount: int | None,
    reason: str,
    expected_remaining: int | None = None,
) -> Transaction:
    """Validate a refund of `original` against what remains refundable (wallet locked)."""
    if original.type != TransactionType.SPEND or original.status != TransactionStatus.SUCCESS:
        raise NotRefundable(transaction_id=original.pk, type=original.type)
    remaining = refundable_remaining(original)
    _checks.check_expected("refundable remaining", expected_remaining, lambda: remaining)
    wanted = remaining if amount is None else amount
    if wanted <= 0 or wanted > remaining:
        raise RefundExceedsOriginal(
            transaction_id=original.pk, refundable=remaining, requested=wanted
        )
    return booking.row(
        wallet, TransactionType.REFUND, wanted, description=reason, related_transaction=original
    )


@observed("refund")
def refund(
    *,
    spend_txn: Any,
    amount: Any = None,
    reason: Any,
    actor: AbstractBaseUser | None,
    reference_id: Any = None,
    expected_remaining: int | None = None,
) -> OperationResult:
    """Give back all (amount omitted) or part of a spend; never more than was spent.

    `expected_remaining` (the admin's confirmation step): what the staff member saw as
    refundable when they confirmed. Checked under the wallet lock, after the replay
    check, so a Back + resubmit of an old confirmation is either a replay of its own
    refund or refused as stale (`StaleConfirmation`), never a second refund.

    Nobody refunds into their own wallet, and only a superuser into a staff member's
    (`self_dealing_forbidden`, audited). A job's own refund (`refund_job`: its failure, or
    its owner cancelling it) gives back exactly what the job cost and is not a staff act.
    """
    amount = _validated_refund_amount(amount)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    reference_id = validate_reference(reference_id)
    spend_id = _checks.id_of(
        spend_txn, Transaction, "transaction must be a transaction id.", field="transaction"
    )
    fingerprint = _checks.fingerprint_of(op="refund", spend=spend_id, amount=amount, reason=reason)

    def operation() -> OperationResult | Rejection:
        owner_id = Transaction.objects.filter(pk=spend_id).values_list("user_id", flat=True).first()
        if owner_id is None:
            raise NotFound(transaction_id=spend_id)
        wallet = Wallet.objects.lock_for_user(owner_id)
        crash_point("refund.locked")
        earlier = _checks.find_replay(wallet, TransactionType.REFUND, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        refusal = _minting.credit_refusal(wallet, actor, action="wallet.refund", amount=amount)
        if refusal is not None:
            return refusal
        original = Transaction.objects.get(pk=spend_id)
        now = timezone.now()
        booking = _booking.Booking(now, actor, reference_id, fingerprint)
        row = _book_refund(
            wallet,
            original,
            booking,
            amount=amount,
            reason=reason,
            expected_remaining=expected_remaining,
        )
        _booking.commit_rows([row], actor, now, {"reason": reason}, crash_at="refund.after_rows")
        _lots.give_back(wallet=wallet, refund=row, spend=original, now=now)
        _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        _mark_job_after_refund(original, JobStatus.REFUNDED, now)
        crash_point("refund.before_commit")
        return OperationResult(row)

    return run_atomically(operation)


@observed("job_refund")
def refund_job(
    *,
    job_id: int,
    reason: str,
    actor: AbstractBaseUser | None = None,
    final_status: str = JobStatus.REFUNDED,
    allowed_statuses: tuple[str, ...] = (JobStatus.FAILED,),
) -> JobRefundResult:
    """Refund what remains of a job's spend, exactly once per job.

    Used for failed jobs (worker, reaper) and for a pending job cancelled by its
    owner. The refund's reference is derived from the job, so a retry, a second
    worker or a cancel racing a failure can never refund twice. Locks the wallet
    before the job, the same order every path uses.
    """
    reference_id = f"job:{job_id}"
    fingerprint = _checks.fingerprint_of(op="job_refund", job=job_id)

    def operation() -> JobRefundResult:
        owner_id = Job.objects.filter(pk=job_id).values_list("user_id", flat=True).first()
        if owner_id is None:
            raise NotFound(job_id=job_id)
        wallet = Wallet.objects.lock_for_user(owner_id)
        job = Job.objects.lock(job_id)
        earlier = _checks.find_replay(wallet, TransactionType.REFUND, reference_id, fingerprint)
        if earlier is not None:
            return JobRefundResult(job, earlier, replayed=True)
        if job.status not in allowed_statuses:
            raise JobNotCancellable(job_id=job_id, status=job.status)
        now = timezone.now()
        original = job.transaction
        row = None
        if refundable_remaining(original) > 0:
            booking = _booking.Booking(now, actor, reference_id, fingerprint)
            row = _book_refund(wallet, original, booking, amount=None, reason=reason)
            _booking.commit_rows([row], actor, now, {"reason": reason, "job_id": job_id})
            _lots.give_back(wallet=wallet, refund=row, spend=original, now=now)
            _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        job.status = final_status
        job.finished_at = job.finished_at or now
        job.save(update_fields=["status", "finished_at", "updated_at"])
        return JobRefundResult(job, row)

    return run_atomically(operation)
