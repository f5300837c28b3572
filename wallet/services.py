"""The only code that writes money. One function per operation, one DB transaction each.

Every operation follows the same shape:
  1. validate its input (nothing touched yet);
  2. lock every wallet it touches, in ascending wallet id order;
  3. replay an earlier call with the same reference, or refuse a reused one;
  4. check limits and balance (a refusal that matters is audited and committed alone);
  5. write its transaction rows, its audit events, and the new balances.
Either all of it commits or nothing does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Sum
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import build_wallet_event, save_events
from divine_whispers.db import Rejection, run_atomically
from divine_whispers.faults import crash_point, row_locks_disabled
from jobs.models import Job, JobStatus, JobType
from wallet.errors import (
    ApprovalNotPending,
    IdempotencyKeyReused,
    InactiveJobType,
    InsufficientBalance,
    JobNotCancellable,
    NotFound,
    NotRefundable,
    PriceMismatch,
    RefundExceedsOriginal,
    SelfApprovalForbidden,
    SelfTransfer,
    StaleConfirmation,
    UnknownRecipient,
    ValidationFailed,
    VelocityLimitExceeded,
)
from wallet.instrumentation import observed
from wallet.models import (
    VELOCITY_TYPES,
    ApprovalRequest,
    ApprovalStatus,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
    new_transfer_id,
)
from wallet.validators import (
    DESCRIPTION_MAX_LENGTH,
    REASON_MAX_LENGTH,
    validate_positive_amount,
    validate_reference,
    validate_signed_amount,
    validate_text,
)

User = get_user_model()

JOB_INPUT_MAX_BYTES = 4096


# --- Results ------------------------------------------------------------------------


@dataclass
class OperationResult:
    transaction: Transaction
    replayed: bool = False


@dataclass
class SpendResult:
    transaction: Transaction
    job: Job
    replayed: bool = False

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as `(transaction, job)`, the contract's return value."""
        return iter((self.transaction, self.job))


@dataclass
class TransferResult:
    debit: Transaction
    credit: Transaction
    replayed: bool = False


@dataclass
class JobRefundResult:
    job: Job
    transaction: Transaction | None
    replayed: bool = False


# --- Shared steps ---------------------------------------------------------------------


def _fingerprint(**params: Any) -> str:
    """Identity of a call's parameters: the same reference replays only when it matches."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _find_replay(
    wallet: Wallet, txn_type: str, reference_id: str | None, fingerprint: str
) -> Transaction | None:
    """The earlier transaction for this reference, if any (wallet must be locked).

    Because the wallet is locked first, a racing duplicate waits here until the first
    call commits and then sees its row: exactly one effect, the other replays.
    """
    if reference_id is None:
        return None
    earlier = Transaction.objects.filter(
        wallet=wallet, type=txn_type, reference_id=reference_id
    ).first()
    if earlier is not None and earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(reference_id=reference_id)
    return earlier


def _persist_wallets(wallets: list[Wallet], now: datetime) -> None:
    for wallet in wallets:
        Wallet.objects.filter(pk=wallet.pk).update(
            balance=wallet.balance, audit_head=wallet.audit_head, updated_at=now
        )


def _reject(
    wallet: Wallet, error: Exception, *, action: str, actor: Any, **metadata: Any
) -> Rejection:
    """Audit a refusal on the wallet's chain; committed alone, then raised."""
    event = build_wallet_event(
        wallet=wallet,
        action=action,
        actor=actor,
        amount=metadata.pop("amount", None),
        balance_before=wallet.balance,
        balance_after=wallet.balance,
        metadata={"code": error.code, **metadata},
    )
    save_events([event])
    _persist_wallets([wallet], timezone.now())
    return Rejection(error)


def _velocity_rejection(wallet: Wallet, actor: Any, now: datetime) -> Rejection | None:
    """Counted from the ledger under the wallet lock, so it holds across processes."""
    window_start = now - timedelta(seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS)
    # Counting stops at the limit: the cost stays bounded however busy the wallet is.
    recent = Transaction.objects.filter(
        wallet=wallet,
        type__in=VELOCITY_TYPES,
        status=TransactionStatus.SUCCESS,
        created_at__gte=window_start,
    )[: settings.WALLET_VELOCITY_LIMIT].count()
    if recent < settings.WALLET_VELOCITY_LIMIT:
        return None
    return _reject(
        wallet,
        VelocityLimitExceeded(
            limit=settings.WALLET_VELOCITY_LIMIT,
            window_seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS,
        ),
        action="suspicious.velocity",
        actor=actor,
        recent_operations=recent,
    )


def _insufficient_rejection(wallet: Wallet, needed: int, *, action: str, actor: Any) -> Rejection:
    return _reject(
        wallet,
        InsufficientBalance(balance=wallet.balance, required=needed),
        action=f"{action}.rejected",
        actor=actor,
        amount=-needed,
        reason="insufficient_balance",
    )


def _book(
    wallet: Wallet,
    *,
    txn_type: str,
    amount: int,
    now: datetime,
    actor: Any = None,
    reference_id: str | None = None,
    fingerprint: str = "",
    description: str = "",
    related_transaction: Transaction | None = None,
    transfer_id: Any = None,
) -> Transaction:
    """A new ledger row applied to the in-memory wallet (saved later, in bulk)."""
    wallet.balance += amount
    return Transaction(
        wallet=wallet,
        user_id=wallet.user_id,
        type=txn_type,
        amount=amount,
        status=TransactionStatus.SUCCESS,
        balance_after=wallet.balance,
        reference_id=reference_id,
        request_fingerprint=fingerprint,
        description=description,
        related_transaction=related_transaction,
        transfer_id=transfer_id,
        actor_id=getattr(actor, "pk", None),
        created_at=now,
    )


def _audit_events_for(
    rows: list[Transaction], actor: Any, metadata: dict | None = None
) -> list[AuditEvent]:
    """One event per ledger row, plus a suspicious.large_amount flag where it applies."""
    events = []
    for row in rows:
        wallet = row.wallet
        events.append(
            build_wallet_event(
                wallet=wallet,
                action=f"wallet.{row.type}",
                actor=actor,
                transaction_id=row.pk,
                amount=row.amount,
                balance_before=row.balance_after - row.amount,
                balance_after=row.balance_after,
                metadata=metadata,
            )
        )
        if abs(row.amount) >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
            events.append(
                build_wallet_event(
                    wallet=wallet,
                    action="suspicious.large_amount",
                    actor=actor,
                    transaction_id=row.pk,
                    amount=row.amount,
                    balance_before=row.balance_after - row.amount,
                    balance_after=row.balance_after,
                    metadata={"threshold": settings.WALLET_LARGE_AMOUNT_THRESHOLD},
                )
            )
    return events


def _commit_rows(
    rows: list[Transaction],
    actor: Any,
    now: datetime,
    metadata: dict | None = None,
    crash_at: str = "",
    more_events: Callable[[], list[AuditEvent]] | None = None,
) -> None:
    """Insert the ledger rows, their audit events, and the wallets' new balances.

    `crash_at` names the test-only crash point between the rows and the rest
    (divine_whispers/faults.py). `more_events` builds further events on the same chains
    once the rows have their ids (an approval's decision names the transaction it booked).
    """
    Transaction.objects.bulk_create(rows)
    crash_point(crash_at)
    events = _audit_events_for(rows, actor, metadata)
    if more_events is not None:
        events += more_events()
    save_events(events)
    _persist_wallets(list({row.wallet.pk: row.wallet for row in rows}.values()), now)


def _user_id(user: Any) -> int:
    """A user instance's id, or a checked user id: a wallet is never created for nobody."""
    if isinstance(user, User):
        return user.pk
    if isinstance(user, int) and not isinstance(user, bool):
        if not User.objects.filter(pk=user).exists():
            raise NotFound(f"User {user} does not exist.", user_id=user)
        return user
    raise ValidationFailed("user must be a user id.", field="user_id")


# --- Operations -----------------------------------------------------------------------


@observed("deposit")
def deposit(
    *,
    user: Any,
    amount: Any,
    reference_id: Any,
    actor: AbstractBaseUser | None = None,
    description: Any = "",
) -> OperationResult:
    """Credit points after a real payment; `reference_id` is the payment's id."""
    amount = validate_positive_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reference_id = validate_reference(reference_id, required=True)
    description = validate_text(
        description, field="description", required=False, max_length=DESCRIPTION_MAX_LENGTH
    )
    user_id = _user_id(user)
    fingerprint = _fingerprint(op="deposit", amount=amount, description=description)

    def operation() -> OperationResult:
        wallet = Wallet.objects.lock_for_user(user_id)
        earlier = _find_replay(wallet, TransactionType.DEPOSIT, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        now = timezone.now()
        row = _book(
            wallet,
            txn_type=TransactionType.DEPOSIT,
            amount=amount,
            now=now,
            actor=actor,
            reference_id=reference_id,
            fingerprint=fingerprint,
            description=description,
        )
        _commit_rows([row], actor, now)
        return OperationResult(row)

    return run_atomically(operation)


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


def _spend_row(
    wallet: Wallet,
    chosen: JobType,
    *,
    now: datetime,
    actor: Any,
    reference_id: str | None,
    fingerprint: str,
) -> Transaction:
    """The spend's ledger row, the same on the fast and the general path."""
    return _book(
        wallet,
        txn_type=TransactionType.SPEND,
        amount=-chosen.price,
        now=now,
        actor=actor,
        reference_id=reference_id,
        fingerprint=fingerprint,
        description=chosen.name,
    )


def _spend_fast(
    user: Any,
    user_id: int,
    code: str,
    *,
    expected_price: Any,
    reference_id: str | None,
    fingerprint: str,
    job_input: dict,
) -> SpendResult | None:
    """The common spend in two statements (the wallet lock must be ours: inside atomic).

    1. `lock_for_spend`: lock the wallet, read the job type, reserve the row ids;
    2. `book_spend`: insert ledger row, job and audit event and debit the balance,
       guarded by the velocity rule and the reference's uniqueness.
    Returns None whenever the spend is not the plain successful case (no wallet yet,
    not enough points, a large amount to flag, a replay, the velocity limit): the
    general path below then handles it under the same lock, exactly as before.
    """
    locked = Wallet.objects.lock_for_spend(user_id, code)
    if locked is None:
        return None
    crash_point("spend.locked")
    chosen = _checked_job_type(locked.job_type, code, expected_price)
    wallet, price = locked.wallet, chosen.price
    if wallet.balance < price or price >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
        return None
    now = timezone.now()
    actor = user if isinstance(user, User) else User(pk=user_id)
    row = _spend_row(
        wallet, chosen, now=now, actor=actor, reference_id=reference_id, fingerprint=fingerprint
    )
    row.pk = locked.transaction_id
    job = Job(
        pk=locked.job_id,
        user_id=user_id,
        job_type=chosen,
        transaction=row,
        points_used=price,
        input=job_input,
        created_at=now,
        updated_at=now,
    )
    events = _audit_events_for([row], actor, {"job_id": job.pk, "job_type": chosen.code})
    balance = Wallet.objects.book_spend(
        wallet,
        amount=price,
        rows=[row, job, *events],
        velocity_since=now - timedelta(seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS),
        velocity_limit=settings.WALLET_VELOCITY_LIMIT,
        reference_id=reference_id,
        now=now,
    )
    if balance is None:
        return None
    if balance != wallet.balance:  # impossible under the lock; never commit if it happens
        raise AssertionError(f"wallet {wallet.pk}: balance {balance} != {wallet.balance}")
    crash_point("spend.before_commit")
    for instance in (row, job):
        instance._state.adding = False
        instance._state.db = Wallet.objects.db
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
    user_id = _user_id(user)
    fingerprint = _fingerprint(op="spend", job_type=code, amount=expected_price, input=job_input)

    def operation() -> SpendResult | Rejection:
        fast = _spend_fast(
            user,
            user_id,
            code,
            expected_price=expected_price,
            reference_id=reference_id,
            fingerprint=fingerprint,
            job_input=job_input,
        )
        if fast is not None:
            return fast
        chosen = _checked_job_type(JobType.objects.filter(code=code).first(), code, expected_price)
        wallet = Wallet.objects.lock_for_user(user_id)
        crash_point("spend.locked")
        earlier = _find_replay(wallet, TransactionType.SPEND, reference_id, fingerprint)
        if earlier is not None:
            # job_type too: the response must not query it after the COMMIT.
            job = Job.objects.select_related("job_type").get(transaction=earlier)
            return SpendResult(earlier, job, replayed=True)
        now = timezone.now()
        actor = wallet.user
        rejection = _velocity_rejection(wallet, actor, now)
        if rejection is not None:
            return rejection
        price = chosen.price
        if wallet.balance < price:
            return _insufficient_rejection(wallet, price, action="wallet.spend", actor=actor)
        row = _spend_row(
            wallet, chosen, now=now, actor=actor, reference_id=reference_id, fingerprint=fingerprint
        )
        Transaction.objects.bulk_create([row])
        crash_point("spend.after_ledger_row")
        job = Job.objects.create(
            user_id=user_id,
            job_type=chosen,
            transaction=row,
            points_used=price,
            input=job_input,
        )
        crash_point("spend.after_job")
        save_events(_audit_events_for([row], actor, {"job_id": job.pk, "job_type": chosen.code}))
        _persist_wallets([wallet], now)
        crash_point("spend.before_commit")
        return SpendResult(row, job)

    return run_atomically(operation)


def _recipient_id(recipient: Any) -> int:
    if isinstance(recipient, User):
        recipient_id = recipient.pk
    elif isinstance(recipient, int) and not isinstance(recipient, bool):
        recipient_id = recipient
    else:
        raise ValidationFailed("to_user_id must be a user id.", field="to_user_id")
    if not User.objects.filter(pk=recipient_id, is_active=True).exists():
        raise UnknownRecipient(to_user_id=recipient_id)
    return recipient_id


def _without_jobs(*rows: Transaction) -> tuple[Transaction, ...]:
    """New transfer rows have no job: say so, so reading `row.job` costs no query."""
    for row in rows:
        Transaction.job.related.set_cached_value(row, None)
    return rows


def _transfer_rows(
    source: Wallet,
    target: Wallet,
    amount: int,
    *,
    now: datetime,
    actor: Any,
    reference_id: str | None,
    fingerprint: str,
    description: str,
) -> tuple[Transaction, Transaction]:
    """The pair of ledger rows, the same on the fast and the general path."""
    common = {
        "now": now,
        "actor": actor,
        "description": description,
        "transfer_id": new_transfer_id(),
    }
    debit = _book(
        source,
        txn_type=TransactionType.TRANSFER_OUT,
        amount=-amount,
        reference_id=reference_id,
        fingerprint=fingerprint,
        **common,
    )
    credit = _book(target, txn_type=TransactionType.TRANSFER_IN, amount=amount, **common)
    return debit, credit


def _transfer_fast(
    sender: Any,
    sender_id: int,
    recipient_id: int,
    amount: int,
    *,
    reference_id: str | None,
    fingerprint: str,
    description: str,
) -> TransferResult | None:
    """The common transfer in two statements (inside the operation's transaction).

    1. `lock_for_transfer`: lock both wallets in ascending id order, reserve row ids;
    2. `book_transfer`: insert both ledger rows and both audit events, debit and credit,
       guarded by the balance, the velocity rule and the reference's uniqueness.
    Returns None whenever the transfer is not the plain successful case (a wallet does
    not exist yet, not enough points, a large amount to flag, a replay, the velocity
    limit): the general path then handles it under the same locks, exactly as before.
    """
    locked = Wallet.objects.lock_for_transfer(sender_id, recipient_id)
    if locked is None:
        return None
    crash_point("transfer.locked")
    source, target = locked.source, locked.target
    if source.balance < amount or amount >= settings.WALLET_LARGE_AMOUNT_THRESHOLD:
        return None
    now = timezone.now()
    actor = sender if isinstance(sender, User) else User(pk=sender_id)
    debit, credit = _transfer_rows(
        source,
        target,
        amount,
        now=now,
        actor=actor,
        reference_id=reference_id,
        fingerprint=fingerprint,
        description=description,
    )
    debit.pk, credit.pk = locked.debit_id, locked.credit_id
    events = _audit_events_for([debit, credit], actor)
    balances = Wallet.objects.book_transfer(
        source,
        target,
        amount=amount,
        rows=[debit, credit, *events],
        velocity_since=now - timedelta(seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS),
        velocity_limit=settings.WALLET_VELOCITY_LIMIT,
        reference_id=reference_id,
        now=now,
    )
    if balances is None:
        return None
    if balances != (source.balance, target.balance):  # impossible under the locks
        raise AssertionError(f"transfer {debit.transfer_id}: balances {balances}")
    crash_point("transfer.before_commit")
    for row in (debit, credit):
        row._state.adding = False
        row._state.db = Wallet.objects.db
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
    limit = min(settings.WALLET_MAX_TRANSFER_AMOUNT, settings.WALLET_MAX_TRANSACTION_AMOUNT)
    amount = validate_positive_amount(amount, maximum=limit)
    reference_id = validate_reference(reference_id)
    description = validate_text(
        description, field="description", required=False, max_length=DESCRIPTION_MAX_LENGTH
    )
    sender_id = _user_id(sender)
    recipient_id = _recipient_id(recipient)
    if recipient_id == sender_id:
        raise SelfTransfer()
    fingerprint = _fingerprint(
        op="transfer", to=recipient_id, amount=amount, description=description
    )

    def operation() -> TransferResult | Rejection:
        fast = _transfer_fast(
            sender,
            sender_id,
            recipient_id,
            amount,
            reference_id=reference_id,
            fingerprint=fingerprint,
            description=description,
        )
        if fast is not None:
            return fast
        wallets = Wallet.objects.lock_for_users([sender_id, recipient_id])
        source, target = wallets[sender_id], wallets[recipient_id]
        crash_point("transfer.locked")
        earlier = _find_replay(source, TransactionType.TRANSFER_OUT, reference_id, fingerprint)
        if earlier is not None:
            credit = Transaction.objects.get(
                transfer_id=earlier.transfer_id, type=TransactionType.TRANSFER_IN
            )
            return TransferResult(earlier, credit, replayed=True)
        now = timezone.now()
        actor = source.user
        rejection = _velocity_rejection(source, actor, now)
        if rejection is not None:
            return rejection
        if source.balance < amount:
            return _insufficient_rejection(source, amount, action="wallet.transfer", actor=actor)
        debit, credit = _transfer_rows(
            source,
            target,
            amount,
            now=now,
            actor=actor,
            reference_id=reference_id,
            fingerprint=fingerprint,
            description=description,
        )
        _commit_rows([debit, credit], actor, now, crash_at="transfer.after_rows")
        crash_point("transfer.before_commit")
        return TransferResult(*_without_jobs(debit, credit))

    return run_atomically(operation)


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
    *,
    amount: int | None,
    reason: str,
    actor: Any,
    reference_id: str | None,
    fingerprint: str,
    now: datetime,
    expected_remaining: int | None = None,
) -> Transaction:
    """Validate a refund of `original` against what remains refundable (wallet locked)."""
    if original.type != TransactionType.SPEND or original.status != TransactionStatus.SUCCESS:
        raise NotRefundable(transaction_id=original.pk, type=original.type)
    remaining = refundable_remaining(original)
    _check_expected("refundable remaining", expected_remaining, lambda: remaining)
    wanted = remaining if amount is None else amount
    if wanted <= 0 or wanted > remaining:
        raise RefundExceedsOriginal(
            transaction_id=original.pk, refundable=remaining, requested=wanted
        )
    return _book(
        wallet,
        txn_type=TransactionType.REFUND,
        amount=wanted,
        now=now,
        actor=actor,
        reference_id=reference_id,
        fingerprint=fingerprint,
        description=reason,
        related_transaction=original,
    )


def _spend_id(spend_txn: Any) -> int:
    if isinstance(spend_txn, Transaction):
        return spend_txn.pk
    if isinstance(spend_txn, int) and not isinstance(spend_txn, bool):
        return spend_txn
    raise ValidationFailed("transaction must be a transaction id.", field="transaction")


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
    """
    amount = _validated_refund_amount(amount)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    reference_id = validate_reference(reference_id)
    spend_id = _spend_id(spend_txn)
    fingerprint = _fingerprint(op="refund", spend=spend_id, amount=amount, reason=reason)

    def operation() -> OperationResult:
        owner_id = Transaction.objects.filter(pk=spend_id).values_list("user_id", flat=True).first()
        if owner_id is None:
            raise NotFound(transaction_id=spend_id)
        wallet = Wallet.objects.lock_for_user(owner_id)
        crash_point("refund.locked")
        earlier = _find_replay(wallet, TransactionType.REFUND, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        original = Transaction.objects.get(pk=spend_id)
        now = timezone.now()
        row = _book_refund(
            wallet,
            original,
            amount=amount,
            reason=reason,
            actor=actor,
            reference_id=reference_id,
            fingerprint=fingerprint,
            now=now,
            expected_remaining=expected_remaining,
        )
        _commit_rows([row], actor, now, {"reason": reason}, crash_at="refund.after_rows")
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
    fingerprint = _fingerprint(op="job_refund", job=job_id)

    def operation() -> JobRefundResult:
        owner_id = Job.objects.filter(pk=job_id).values_list("user_id", flat=True).first()
        if owner_id is None:
            raise NotFound(job_id=job_id)
        wallet = Wallet.objects.lock_for_user(owner_id)
        job = Job.objects.lock(job_id)
        earlier = _find_replay(wallet, TransactionType.REFUND, reference_id, fingerprint)
        if earlier is not None:
            return JobRefundResult(job, earlier, replayed=True)
        if job.status not in allowed_statuses:
            raise JobNotCancellable(job_id=job_id, status=job.status)
        now = timezone.now()
        original = job.transaction
        row = None
        if refundable_remaining(original) > 0:
            row = _book_refund(
                wallet,
                original,
                amount=None,
                reason=reason,
                actor=actor,
                reference_id=reference_id,
                fingerprint=fingerprint,
                now=now,
            )
            _commit_rows([row], actor, now, {"reason": reason, "job_id": job_id})
        job.status = final_status
        job.finished_at = job.finished_at or now
        job.save(update_fields=["status", "finished_at", "updated_at"])
        return JobRefundResult(job, row)

    return run_atomically(operation)


def _check_expected(what: str, expected: int | None, current: Callable[[], int]) -> None:
    """Refuse when the figure a staff member confirmed is no longer true (under the lock)."""
    if expected is None:
        return
    now_value = current()
    if now_value != expected:
        raise StaleConfirmation(
            f"The {what} changed from {expected:,} to {now_value:,} points since you "
            "confirmed; nothing was booked. Review the new figures and confirm again.",
            what=what,
            confirmed=expected,
            current=now_value,
        )


def approval_required(amount: int) -> bool:
    """Whether an adjustment of `amount` needs a second staff member (0 = approvals off)."""
    threshold = settings.WALLET_APPROVAL_THRESHOLD
    return threshold > 0 and abs(amount) >= threshold


@observed("adjust")
def adjust(
    *,
    user: Any,
    amount: Any,
    reason: Any,
    actor: AbstractBaseUser | None,
    reference_id: Any = None,
    expected_balance: int | None = None,
) -> OperationResult | ApprovalResult:
    """A signed correction by finance staff, with a written reason.

    An amount at or above `WALLET_APPROVAL_THRESHOLD` (in magnitude) is not booked: it
    becomes a pending `ApprovalRequest` (returned as an `ApprovalResult`) that another
    staff member approves or rejects. A reference names one request or one booking:
    repeating it replays whichever it named, with other parameters it is refused.
    `expected_balance`: the balance the admin's confirmation page showed (see refund).
    """
    amount = validate_signed_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)
    reference_id = validate_reference(reference_id)
    user_id = _user_id(user)
    fingerprint = _fingerprint(op="adjust", amount=amount, reason=reason)
    needs_approval = approval_required(amount)
    if needs_approval and _actor_id(actor) is None:
        raise ValidationFailed(
            "An adjustment that needs approval must name the staff member asking for it.",
            field="actor",
        )

    def operation() -> OperationResult | ApprovalResult | Rejection:
        wallet = Wallet.objects.lock_for_user(user_id)
        requested = _find_approval_replay(wallet, reference_id, fingerprint)
        if requested is not None:
            return ApprovalResult(requested, replayed=True)
        earlier = _find_replay(wallet, TransactionType.ADJUSTMENT, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        _check_expected("wallet balance", expected_balance, lambda: wallet.balance)
        if wallet.balance + amount < 0:
            # Also for a request: one that could never be booked now is refused at once.
            return _insufficient_rejection(wallet, -amount, action="wallet.adjustment", actor=actor)
        now = timezone.now()
        asked = _AskedAdjustment(amount, reason, reference_id, fingerprint)
        if needs_approval:
            return ApprovalResult(_open_approval(wallet, asked, actor=actor, now=now))
        row = _adjustment_row(wallet, asked, actor=actor, now=now)
        _commit_rows([row], actor, now, {"reason": reason})
        return OperationResult(row)

    return run_atomically(operation)


@dataclass(frozen=True)
class _AskedAdjustment:
    """What was asked for: booked at once, or kept on an approval request until decided."""

    amount: int
    reason: str
    reference_id: str | None
    fingerprint: str


def _adjustment_row(
    wallet: Wallet, asked: _AskedAdjustment, *, actor: Any, now: datetime
) -> Transaction:
    return _book(
        wallet,
        txn_type=TransactionType.ADJUSTMENT,
        amount=asked.amount,
        now=now,
        actor=actor,
        reference_id=asked.reference_id,
        fingerprint=asked.fingerprint,
        description=asked.reason,
    )


# --- Four-eyes approvals (contract: Approvals) ------------------------------------------
#
# The only writer of ApprovalRequest rows. Lock order, everywhere: the target wallet
# first (the same lock every money operation takes), then the request row. Two
# approvers racing therefore queue on the wallet; the second finds the request decided.


@dataclass
class ApprovalResult:
    approval: ApprovalRequest
    replayed: bool = False


@dataclass
class ApprovalDecision:
    approval: ApprovalRequest
    transaction: Transaction | None = None


def _actor_id(actor: Any) -> int | None:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return None
    return actor.pk


def _find_approval_replay(
    wallet: Wallet, reference_id: str | None, fingerprint: str
) -> ApprovalRequest | None:
    """The request opened earlier with this reference, if any (wallet must be locked)."""
    if reference_id is None:
        return None
    earlier = ApprovalRequest.objects.filter(wallet=wallet, reference_id=reference_id).first()
    if earlier is not None and earlier.request_fingerprint != fingerprint:
        raise IdempotencyKeyReused(reference_id=reference_id)
    return earlier


def _approval_event(
    wallet: Wallet,
    approval: ApprovalRequest,
    action: str,
    actor: Any,
    *,
    transaction_id: int | None = None,
    **metadata: Any,
) -> AuditEvent:
    """An event about `approval` on its wallet's chain (moves the in-memory head)."""
    return build_wallet_event(
        wallet=wallet,
        action=action,
        actor=actor,
        transaction_id=transaction_id,
        amount=approval.amount,
        balance_before=wallet.balance - (approval.amount if transaction_id else 0),
        balance_after=wallet.balance,
        metadata={
            "approval_id": approval.pk,
            "requested_by": approval.requested_by_id,
            "reason": approval.reason,
            **metadata,
        },
    )


def _open_approval(
    wallet: Wallet, asked: _AskedAdjustment, *, actor: Any, now: datetime
) -> ApprovalRequest:
    approval = ApprovalRequest.objects.create(
        wallet=wallet,
        user_id=wallet.user_id,
        amount=asked.amount,
        reason=asked.reason,
        reference_id=asked.reference_id,
        request_fingerprint=asked.fingerprint,
        requested_by_id=actor.pk,
        expires_at=now + timedelta(hours=settings.WALLET_APPROVAL_TTL_HOURS),
        created_at=now,
    )
    event = _approval_event(
        wallet,
        approval,
        "approval.requested",
        actor,
        reference_id=asked.reference_id,
        expires_at=approval.expires_at.isoformat(),
        threshold=settings.WALLET_APPROVAL_THRESHOLD,
    )
    save_events([event])
    _persist_wallets([wallet], now)
    return approval


def _approval_id(approval: Any) -> int:
    if isinstance(approval, ApprovalRequest):
        return approval.pk
    if isinstance(approval, int) and not isinstance(approval, bool):
        return approval
    raise ValidationFailed("approval must be an approval request id.", field="approval")


def _lock_approval(approval_id: int) -> tuple[Wallet, ApprovalRequest]:
    """Lock the request's wallet, then the request (the order every decision uses)."""
    user_id = (
        ApprovalRequest.objects.filter(pk=approval_id).values_list("user_id", flat=True).first()
    )
    if user_id is None:
        raise NotFound(f"Approval request {approval_id} does not exist.", approval_id=approval_id)
    wallet = Wallet.objects.lock_for_user(user_id)
    requests = ApprovalRequest.objects.select_related("requested_by")
    if not row_locks_disabled():  # test-only switch (divine_whispers/faults.py), as for wallets
        requests = requests.select_for_update(of=("self",))
    return wallet, requests.get(pk=approval_id)


def _decision_refusal(
    wallet: Wallet, approval: ApprovalRequest, actor: Any, decision: str, now: datetime
) -> Rejection | None:
    """Why `actor` may not decide `approval` now, audited; None when they may.

    The requester never decides (checked first: it holds whatever the status). A
    request found past its expiry is marked `expired` and audited, once.
    """
    if approval.requested_by_id == _actor_id(actor):
        return _reject(
            wallet,
            SelfApprovalForbidden(approval_id=approval.pk),
            action="approval.self_decision_refused",
            actor=actor,
            amount=approval.amount,
            approval_id=approval.pk,
            decision=decision,
        )
    if approval.status == ApprovalStatus.PENDING and approval.is_expired(now):
        approval.status = ApprovalStatus.EXPIRED
        approval.decided_at = now
        approval.save(update_fields=["status", "decided_at", "updated_at"])
        save_events([_approval_event(wallet, approval, "approval.expired", actor)])
        _persist_wallets([wallet], now)
        return Rejection(_not_pending(approval))
    if approval.status != ApprovalStatus.PENDING:
        raise _not_pending(approval)
    return None


def _not_pending(approval: ApprovalRequest) -> ApprovalNotPending:
    return ApprovalNotPending(
        f"Approval request {approval.pk} is {approval.status}, not pending.",
        approval_id=approval.pk,
        status=str(approval.status),
    )


def _decide(
    approval: Any,
    actor: Any,
    decision: str,
    act: Callable[[Wallet, ApprovalRequest, datetime], ApprovalDecision | Rejection],
) -> ApprovalDecision:
    """The frame of a decision: lock wallet then request, refuse (audited) what may not be
    decided by `actor` now, else `act` — all in one DB transaction."""
    approval_id = _approval_id(approval)
    if _actor_id(actor) is None:
        raise ValidationFailed("A decision must name the staff member deciding.", field="actor")

    def operation() -> ApprovalDecision | Rejection:
        wallet, request = _lock_approval(approval_id)
        now = timezone.now()
        refusal = _decision_refusal(wallet, request, actor, decision, now)
        return refusal if refusal is not None else act(wallet, request, now)

    return run_atomically(operation)


def _record_decision(
    request: ApprovalRequest, status: str, actor: Any, now: datetime, **fields: Any
) -> None:
    request.status = status
    request.decided_by = actor
    request.decided_at = now
    for name, value in fields.items():
        setattr(request, name, value)
    request.save(update_fields=["status", "decided_by", "decided_at", *fields, "updated_at"])


@observed("adjust")  # the approved adjustment is booked here: counted and logged as one
def approve_adjustment(*, approval: Any, actor: AbstractBaseUser) -> ApprovalDecision:
    """A second staff member approves: the adjustment is booked now, exactly once.

    Under the usual rules: a balance that would go negative is refused (402) and the
    request stays pending. The booking, the request's new status and both audit events
    commit together or not at all.
    """

    def book(wallet: Wallet, request: ApprovalRequest, now: datetime):
        if wallet.balance + request.amount < 0:
            return _reject(
                wallet,
                InsufficientBalance(balance=wallet.balance, required=-request.amount),
                action="wallet.adjustment.rejected",
                actor=actor,
                amount=request.amount,
                reason="insufficient_balance",
                approval_id=request.pk,
            )
        asked = _AskedAdjustment(
            request.amount, request.reason, request.reference_id, request.request_fingerprint
        )
        row = _adjustment_row(wallet, asked, actor=actor, now=now)
        _commit_rows(
            [row],
            actor,
            now,
            {"reason": request.reason, "approval_id": request.pk},
            more_events=lambda: [
                _approval_event(wallet, request, "approval.approved", actor, transaction_id=row.pk)
            ],
        )
        _record_decision(request, ApprovalStatus.APPROVED, actor, now, transaction=row)
        return ApprovalDecision(request, row)

    return _decide(approval, actor, "approve", book)


def reject_adjustment(*, approval: Any, actor: AbstractBaseUser, reason: Any) -> ApprovalDecision:
    """A second staff member rejects, with a written reason; nothing is booked."""
    reason = validate_text(reason, field="reason", required=True, max_length=REASON_MAX_LENGTH)

    def refuse(wallet: Wallet, request: ApprovalRequest, now: datetime):
        _record_decision(request, ApprovalStatus.REJECTED, actor, now, decision_reason=reason)
        event = _approval_event(wallet, request, "approval.rejected", actor, decision_reason=reason)
        save_events([event])
        _persist_wallets([wallet], now)
        return ApprovalDecision(request)

    return _decide(approval, actor, "reject", refuse)


# --- Operator repairs (replay_ledger, cleanup_pending) ---------------------------------


@dataclass
class BalanceRepair:
    wallet_id: int
    cached_balance: int
    ledger_balance: int
    repaired: bool = False
    refused: str = ""


def ledger_balance(wallet: Wallet) -> int:
    """The sum of the wallet's successful transactions: what its balance must be."""
    return (
        Transaction.objects.successful()
        .filter(wallet=wallet)
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )


def repair_balance(
    *, wallet_id: int, actor: AbstractBaseUser | None = None, reason: str = "replay_ledger"
) -> BalanceRepair:
    """Reset a wallet's cached balance to its ledger sum (disaster recovery), audited.

    The ledger is the truth and is never touched; only the cache on the wallet row
    moves. The sum is recomputed under the wallet lock, so a concurrent operation can
    neither be lost nor counted twice, and the fix is a `wallet.balance_repaired` event
    on the wallet's own chain (head updated in the same UPDATE as the balance).
    """

    def operation() -> BalanceRepair:
        user_id = Wallet.objects.filter(pk=wallet_id).values_list("user_id", flat=True).first()
        if user_id is None:
            raise NotFound(wallet_id=wallet_id)
        wallet = Wallet.objects.lock_for_user(user_id)
        cached, truth = wallet.balance, ledger_balance(wallet)
        result = BalanceRepair(wallet.pk, cached, truth)
        if cached == truth:
            return result
        if truth < 0:
            result.refused = "the ledger sum is negative; investigate the ledger rows"
            return result
        save_events(
            [
                build_wallet_event(
                    wallet=wallet,
                    action="wallet.balance_repaired",
                    actor=actor,
                    amount=truth - cached,
                    balance_before=cached,
                    balance_after=truth,
                    metadata={"reason": reason, "cached_balance": cached, "ledger_balance": truth},
                )
            ]
        )
        wallet.balance = truth
        _persist_wallets([wallet], timezone.now())
        result.repaired = True
        return result

    return run_atomically(operation)


def _fail_stale_pending_of_wallet(
    wallet_id: int, cutoff: datetime, actor: Any, batch_size: int
) -> int:
    """Fail up to `batch_size` stale pending rows of one wallet, one audit event each."""

    def operation() -> int:
        user_id = Wallet.objects.filter(pk=wallet_id).values_list("user_id", flat=True).first()
        wallet = Wallet.objects.lock_for_user(user_id)
        rows = list(
            Transaction.objects.select_for_update(of=("self",))
            .filter(wallet=wallet, status=TransactionStatus.PENDING, created_at__lt=cutoff)
            .order_by("id")[:batch_size]
        )
        if not rows:
            return 0
        now = timezone.now()
        Transaction.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=TransactionStatus.FAILED, updated_at=now
        )
        save_events(
            [
                build_wallet_event(
                    wallet=wallet,
                    action="wallet.pending_failed",
                    actor=actor,
                    transaction_id=row.pk,
                    amount=row.amount,
                    balance_before=wallet.balance,
                    balance_after=wallet.balance,
                    metadata={
                        "reason": "stale_pending",
                        "type": row.type,
                        "pending_since": row.created_at.isoformat(),
                        "cutoff": cutoff.isoformat(),
                    },
                )
                for row in rows
            ]
        )
        _persist_wallets([wallet], now)
        return len(rows)

    return run_atomically(operation)


def stale_pending(cutoff: datetime):
    """Pending rows created before `cutoff` (read-only queryset)."""
    return Transaction.objects.filter(status=TransactionStatus.PENDING, created_at__lt=cutoff)


def fail_stale_pending(
    *, older_than: timedelta, actor: AbstractBaseUser | None = None, batch_size: int = 500
) -> int:
    """Turn `pending` rows older than `older_than` into `failed`; returns how many.

    A pending row never counted toward a balance, so failing it moves no money; each
    row gets a `wallet.pending_failed` event on its wallet's chain. Works wallet by
    wallet in short transactions (wallet locked, rows re-read under the lock), so a
    row confirmed meanwhile is left alone and a second run finds nothing: idempotent.
    """
    cutoff = timezone.now() - older_than
    total, last_wallet_id = 0, 0
    while True:
        wallet_ids = list(
            stale_pending(cutoff)
            .filter(wallet_id__gt=last_wallet_id)
            .order_by("wallet_id")
            .values_list("wallet_id", flat=True)
            .distinct()[:1000]
        )
        if not wallet_ids:
            return total
        for wallet_id in wallet_ids:
            while done := _fail_stale_pending_of_wallet(wallet_id, cutoff, actor, batch_size):
                total += done
                if done < batch_size:
                    break
        last_wallet_id = wallet_ids[-1]
