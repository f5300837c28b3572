"""Expiry: the unused remainder of every lot past its `expires_at` becomes one `expiry`
row, exactly once however many runs race (`manage.py expire_points`, every worker's
sweep, and any debit of the wallet, which books its due expiries first).

Part of the wallet.services package (see its __init__): the only code that writes money.
Each wallet is its own transaction under its lock, so one wallet's failure never holds
back another's, and a second run waits for the lock and then finds nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from divine_whispers.db.transactions import run_atomically
from wallet.models import Lot, Transaction, Wallet
from wallet.services import _lots


@dataclass
class ExpiryRun:
    """What one run booked: the expiry rows, and the wallets it visited."""

    rows: list[Transaction] = field(default_factory=list)
    wallets: int = 0

    @property
    def points(self) -> int:
        return -sum(row.amount for row in self.rows)


def _expire_wallet(user_id: int, now: datetime) -> list[Transaction]:
    def operation() -> list[Transaction]:
        wallet = Wallet.objects.lock_for_user(user_id)
        return _lots.expire_due(wallet=wallet, now=now)

    return run_atomically(operation)


def expire_points(*, now: datetime | None = None, batch_size: int = 1000) -> ExpiryRun:
    """Book the expiry of every lot due at `now` (default: the current time)."""
    now = now or timezone.now()
    run = ExpiryRun()
    seen: set[int] = set()
    while True:
        user_ids = list(
            Lot.objects.due(now)
            .exclude(wallet__user_id__in=seen)
            .order_by("wallet__user_id")
            .values_list("wallet__user_id", flat=True)
            .distinct()[:batch_size]
        )
        if not user_ids:
            return run
        for user_id in user_ids:
            seen.add(user_id)
            run.rows += _expire_wallet(user_id, now)
            run.wallets += 1
