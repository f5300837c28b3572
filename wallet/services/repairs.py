"""Repairs: a wallet's cached balance reset to its ledger sum, stale pending rows failed.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from audit.services import build_wallet_event, save_events
from divine_whispers.db.transactions import run_atomically
from divine_whispers.errors import (
    NotFound,
)
from wallet.models import (
    Transaction,
    TransactionStatus,
    Wallet,
)
from wallet.services import _booking


@dataclass
class BalanceRepair:
    wallet_id: int
    cached_balance: int
    ledger_balance: int
    repaired: bool = False
    refused: str = ""


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
        cached, truth = wallet.balance, Transaction.objects.ledger_sum(wallet.pk)
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
        _booking.persist_wallets([wallet], timezone.now())
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
                _booking.row_event(
                    wallet,
                    row,
                    "wallet.pending_failed",
                    actor,
                    {
                        "reason": "stale_pending",
                        "type": row.type,
                        "pending_since": row.created_at.isoformat(),
                        "cutoff": cutoff.isoformat(),
                    },
                    balances=(wallet.balance, wallet.balance),  # a pending row moved nothing
                )
                for row in rows
            ]
        )
        _booking.persist_wallets([wallet], now)
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
