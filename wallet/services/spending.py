"""Spends: the price of a job type debited and its job created, on a two-statement fast
path or the general path.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.services import save_events
from divine_whispers.db.faults import crash_point
from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.errors import (
    InactiveJobType,
    PriceMismatch,
    ValidationFailed,
)
from divine_whispers.money import (
    validate_positive_amount,
    validate_reference,
)
from jobs.models import Job, JobType
from wallet.models import (
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _checks, _fast_path, _lots
from wallet.services._observed import observed
from wallet.services.results import SpendResult

JOB_INPUT_MAX_BYTES = 4096


def _job_type_code(job_type: Any) -> str:
    if isinstance(job_type, JobType):
        return job_type.code
    if isinstance(job_type, str) and job_type:
        return job_type
    raise ValidationFailed("job_type must be a job type code.", field="job_type")


def _checked_job_type(found: JobType | None, code: str, expected_price: Any) -> JobType:
    """The job type a spend may buy, at the price the client expected (if it sent one)."""
    if found is None:
        raise ValidationFailed(f"Unknown job type {code!r}.", field="job_type")
    if not found.active:
        raise InactiveJobType(job_type=code)
    if expected_price is not None:
        validate_positive_amount(expected_price, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
        if expected_price != found.price:
            raise PriceMismatch(job_type=code, price=found.price, amount=expected_price)
    return found


def _validate_job_input(job_input: Any) -> dict:
    if job_input is None:
        return {}
    if not isinstance(job_input, dict):
        raise ValidationFailed("input must be a JSON object.", field="input")
    if len(json.dumps(job_input, default=str)) > JOB_INPUT_MAX_BYTES:
        raise ValidationFailed(f"input must be at most {JOB_INPUT_MAX_BYTES} bytes.", field="input")
    return job_input


@dataclass(frozen=True)
class _SpendCall:
    """A spend's checked input: what the fast and the general path both read."""

    user: Any
    user_id: int
    code: str
    expected_price: Any
    reference_id: str | None
    fingerprint: str
    job_input: dict

    def row(self, wallet: Wallet, chosen: JobType, now: datetime, actor: Any) -> Transaction:
        """The spend's ledger row, the same on the fast and the general path."""
        booking = _booking.Booking(now, actor, self.reference_id, self.fingerprint)
        return booking.row(wallet, TransactionType.SPEND, -chosen.price, description=chosen.name)


def _spend_fast(call: _SpendCall) -> SpendResult | None:
    """The common spend in two statements (the wallet lock must be ours: inside atomic).

    1. `lock_for_spend`: lock the wallet, read the job type, reserve the row ids;
    2. `book_spend`: insert ledger row, job and audit event and debit the balance,
       guarded by the velocity rule and the reference's uniqueness.
    Returns None whenever the spend is not the plain successful case (no wallet yet,
    not enough points, a large amount to flag, a replay, the velocity limit): the
    general path below then handles it under the same lock, exactly as before.
    """
    locked = _fast_path.lock_for_spend(call.user_id, call.code)
    if locked is None:
        return None
    crash_point("spend.locked")
    chosen = _checked_job_type(locked.job_type, call.code, call.expected_price)
    wallet, price = locked.wallet, chosen.price
    if wallet.balance < price or price >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
        return None
    now = timezone.now()
    actor = _checks.acting_user(call.user, call.user_id)
    row = call.row(wallet, chosen, now, actor)
    row.pk = locked.transaction_id
    job = Job(
        pk=locked.job_id,
        user_id=call.user_id,
        job_type=chosen,
        transaction=row,
        points_used=price,
        input=call.job_input,
        created_at=now,
        updated_at=now,
    )
    events = _booking.audit_events_for([row], actor, {"job_id": job.pk, "job_type": chosen.code})
    balance = _fast_path.book_spend(
        wallet, amount=price, rows=[row, job, *events], reference_id=call.reference_id, now=now
    )
    if balance is None:
        return None
    if balance != wallet.balance:  # impossible under the lock; never commit if it happens
        raise AssertionError(f"wallet {wallet.pk}: balance {balance} != {wallet.balance}")
    crash_point("spend.before_commit")
    _fast_path.mark_saved(row, job)
    return SpendResult(row, job)


@observed("spend")
def spend(
    *,
    user: Any,
    job_type: Any,
    reference_id: Any = None,
    expected_price: Any = None,
    job_input: Any = None,
) -> SpendResult:
    """Buy one job at its server-side price; the Job is created in the same transaction."""
    reference_id = validate_reference(reference_id)
    job_input = _validate_job_input(job_input)
    code = _job_type_code(job_type)
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(
        op="spend", job_type=code, amount=expected_price, input=job_input
    )
    call = _SpendCall(user, user_id, code, expected_price, reference_id, fingerprint, job_input)

    def operation() -> SpendResult | Rejection:
        fast = _spend_fast(call)
        if fast is not None:
            return fast
        chosen = _checked_job_type(JobType.objects.filter(code=code).first(), code, expected_price)
        wallet = Wallet.objects.lock_for_user(user_id)
        crash_point("spend.locked")
        earlier = _checks.find_replay(wallet, TransactionType.SPEND, reference_id, fingerprint)
        if earlier is not None:
            # job_type too: the response must not query it after the COMMIT.
            job = Job.objects.select_related("job_type").get(transaction=earlier)
            return SpendResult(earlier, job, replayed=True)
        now = timezone.now()
        actor = wallet.user
        price = chosen.price
        _lots.expire_due(wallet=wallet, now=now)
        rejection = _checks.debit_refusal(
            wallet, price, action="wallet.spend", actor=actor, now=now
        )
        if rejection is not None:
            return rejection
        row = call.row(wallet, chosen, now, actor)
        Transaction.objects.bulk_create([row])
        _lots.draw(wallet=wallet, transaction=row, amount=price, now=now)
        crash_point("spend.after_ledger_row")
        job = Job.objects.create(
            user_id=user_id,
            job_type=chosen,
            transaction=row,
            points_used=price,
            input=job_input,
        )
        crash_point("spend.after_job")
        save_events(
            _booking.audit_events_for([row], actor, {"job_id": job.pk, "job_type": chosen.code})
        )
        _booking.persist_wallets([wallet], now)
        crash_point("spend.before_commit")
        return SpendResult(row, job)

    return run_atomically(operation)
