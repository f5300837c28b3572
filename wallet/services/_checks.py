"""The checks every money operation makes before it books: whose wallet, whether the
call replays an earlier one, the velocity limit, the balance, the figures a staff
member confirmed. A refusal that matters is audited on the wallet's chain.

Private to the wallet.services package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from audit.services import build_wallet_event, save_events
from divine_whispers.db.transactions import Rejection
from divine_whispers.errors import (
    IdempotencyKeyReused,
    InsufficientBalance,
    NotFound,
    StaleConfirmation,
    ValidationFailed,
    VelocityLimitExceeded,
    WalletInDebt,
)
from wallet.models import VELOCITY_TYPES, Transaction, TransactionStatus, Wallet
from wallet.services import _booking

User = get_user_model()


def fingerprint_of(**params: Any) -> str:
    """Identity of a call's parameters: the same reference replays only when it matches."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def find_replay(
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


def reject(
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
    _booking.persist_wallets([wallet], timezone.now())
    return Rejection(error)


def velocity_window_start(now: datetime) -> datetime:
    """Where the velocity rule's window begins: its spends and transfers since count."""
    return now - timedelta(seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS)


def velocity_rejection(wallet: Wallet, actor: Any, now: datetime) -> Rejection | None:
    """Counted from the ledger under the wallet lock, so it holds across processes."""
    window_start = velocity_window_start(now)
    # Counting stops at the limit: the cost stays bounded however busy the wallet is.
    recent = Transaction.objects.filter(
        wallet=wallet,
        type__in=VELOCITY_TYPES,
        status=TransactionStatus.SUCCESS,
        created_at__gte=window_start,
    )[: settings.WALLET_VELOCITY_LIMIT].count()
    if recent < settings.WALLET_VELOCITY_LIMIT:
        return None
    return reject(
        wallet,
        VelocityLimitExceeded(
            limit=settings.WALLET_VELOCITY_LIMIT,
            window_seconds=settings.WALLET_VELOCITY_WINDOW_SECONDS,
        ),
        action="suspicious.velocity",
        actor=actor,
        recent_operations=recent,
    )


def insufficient_rejection(
    wallet: Wallet, needed: int, *, action: str, actor: Any, **metadata: Any
) -> Rejection:
    """`metadata` adds to the refusal's audit event (an adjustment keeps the staff's
    typed reason there: `reason` is the refusal's own code)."""
    return reject(
        wallet,
        InsufficientBalance(balance=wallet.balance, required=needed),
        action=f"{action}.rejected",
        actor=actor,
        amount=-needed,
        reason="insufficient_balance",
        **metadata,
    )


def debit_refusal(
    wallet: Wallet, needed: int, *, action: str, actor: Any, now: datetime
) -> Rejection | None:
    """What refuses a debit of `needed` points under the wallet lock, if anything: the
    debt, then the velocity rule, then the balance (each refusal audited)."""
    if wallet.debt > 0:
        return reject(
            wallet,
            WalletInDebt(debt=wallet.debt),
            action=f"{action}.rejected",
            actor=actor,
            amount=-needed,
            reason="wallet_in_debt",
        )
    rejection = velocity_rejection(wallet, actor, now)
    if rejection is not None:
        return rejection
    if wallet.balance < needed:
        return insufficient_rejection(wallet, needed, action=action, actor=actor)
    return None


def id_of(value: Any, model: type, message: str, *, field: str) -> int:
    """The id of a `model` instance, or an id given as a plain integer (never a bool)."""
    if isinstance(value, model):
        return value.pk
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValidationFailed(message, field=field)


def checked_user_id(user: Any) -> int:
    """A user instance's id, or a checked user id: a wallet is never created for nobody."""
    if isinstance(user, User):
        return user.pk
    if isinstance(user, int) and not isinstance(user, bool):
        if not User.objects.filter(pk=user).exists():
            raise NotFound(f"User {user} does not exist.", user_id=user)
        return user
    raise ValidationFailed("user must be a user id.", field="user_id")


def acting_user(user: Any, user_id: int) -> Any:
    """The user a fast path acts for: the instance given, or one standing for the checked
    id (no query: only its pk is read)."""
    return user if isinstance(user, User) else User(pk=user_id)


def check_expected(what: str, expected: int | None, current: Callable[[], int]) -> None:
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
