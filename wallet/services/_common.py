"""Shared by every money operation: results, replay lookup, rejections, booking rows
and their audit events.

Part of the wallet.services package (see its __init__): the only code that writes money.
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
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import build_wallet_event, save_events
from divine_whispers.db.faults import crash_point
from divine_whispers.db.transactions import Rejection
from divine_whispers.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    NotFound,
    StaleConfirmation,
    ValidationFailed,
    VelocityLimitExceeded,
)
from jobs.models import Job
from wallet.models import (
    VELOCITY_TYPES,
    Transaction,
    TransactionStatus,
    Wallet,
)

User = get_user_model()

JOB_INPUT_MAX_BYTES = 4096


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


def _mark_saved(*instances: Any) -> None:
    """Rows a fast path inserted with raw SQL: tell Django they now exist in the database,
    so a later save() updates them instead of inserting a duplicate."""
    for instance in instances:
        instance._state.adding = False
        instance._state.db = Wallet.objects.db


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
