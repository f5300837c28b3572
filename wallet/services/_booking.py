"""Booking: new ledger rows applied to the in-memory wallets, their audit events, and the
inserts and balance updates that write them (the general path of every operation).

Private to the wallet.services package: the only code that writes money.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings

from audit.models import AuditEvent
from audit.services import build_wallet_event, save_events
from divine_whispers.db.faults import crash_point
from wallet.models import Transaction, TransactionStatus, Wallet


def persist_wallets(wallets: list[Wallet], now: datetime) -> None:
    for wallet in wallets:
        Wallet.objects.filter(pk=wallet.pk).update(
            balance=wallet.balance, audit_head=wallet.audit_head, updated_at=now
        )


def book(
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


def audit_events_for(
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


def commit_rows(
    rows: list[Transaction],
    actor: Any,
    now: datetime,
    metadata: dict | None = None,
    crash_at: str = "",
    more_events: Callable[[], list[AuditEvent]] | None = None,
) -> None:
    """Insert the ledger rows, their audit events, and the wallets' new balances.

    `crash_at` names the test-only crash point between the rows and the rest
    (divine_whispers/db/faults.py). `more_events` builds further events on the same chains
    once the rows have their ids (an approval's decision names the transaction it booked).
    """
    Transaction.objects.bulk_create(rows)
    crash_point(crash_at)
    events = audit_events_for(rows, actor, metadata)
    if more_events is not None:
        events += more_events()
    save_events(events)
    persist_wallets(list({row.wallet.pk: row.wallet for row in rows}.values()), now)
