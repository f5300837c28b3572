"""Debt: what a clawback could not take from a wallet's balance, paid back first by the
next points credited to it.

`take` books a clawback: a `clawback` row of what the balance holds (drawn from the lots
like any debit: promotional first), the rest added to `wallet.debt`. `settle` runs right
after a credit has booked its row and its lots: while the wallet owes a debt, a `clawback`
row of what the balance now holds (up to the debt) pays it, in the same transaction. Every
credit operation calls it (deposit, refund, transfer in, adjustment, purchase, reversal);
the fast path never credits a wallet in debt (its guard refuses, wallet/services/_fast_path.py).

Private to the wallet.services package. The caller holds the wallet's lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wallet.models import Transaction, TransactionType, Wallet
from wallet.services import _booking, _lots


def _clawback_row(
    wallet: Wallet, points: int, actor: Any, now: datetime, description: str, metadata: dict
) -> Transaction:
    row = _booking.Booking(now, actor).row(
        wallet, TransactionType.CLAWBACK, -points, description=description
    )
    _booking.commit_rows([row], actor, now, metadata)
    _lots.draw(wallet=wallet, transaction=row, amount=points, now=now)
    return row


def take(
    *, wallet: Wallet, owed: int, now: datetime, description: str, metadata: dict
) -> Transaction | None:
    """Claw back `owed` points: the row takes what the balance holds, the rest is debt."""
    _lots.expire_due(wallet=wallet, now=now)
    taken = min(owed, wallet.balance)
    wallet.debt += owed - taken
    if taken <= 0:
        _booking.persist_wallets([wallet], now)
        return None
    return _clawback_row(wallet, taken, None, now, description, metadata)


def settle(*, wallet: Wallet, credit: Transaction, actor: Any, now: datetime) -> Transaction | None:
    """Pay the wallet's debt first from the points `credit` just brought (if it owes one;
    a debit, such as a negative adjustment, pays nothing)."""
    if wallet.debt <= 0 or credit.amount <= 0:
        return None
    _lots.expire_due(wallet=wallet, now=now)
    paid = min(wallet.debt, wallet.balance)
    if paid <= 0:
        return None
    wallet.debt -= paid
    metadata = {"reason": "debt_repaid", "debt": wallet.debt}
    return _clawback_row(wallet, paid, actor, now, "Debt repaid", metadata)
