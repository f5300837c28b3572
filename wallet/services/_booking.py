"""Booking: new ledger rows applied to the in-memory wallets, their audit events, and the
inserts and balance updates that write them (the general path of every operation).

Private to the wallet.services package: the only code that writes money.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from audit.models import AuditEvent
from audit.services import build_wallet_event, save_events
from divine_whispers.db.faults import crash_point
from wallet.models import Transaction, TransactionStatus, Wallet


def persist_wallets(wallets: list[Wallet], now: datetime) -> None:
    for wallet in wallets:
        fields = {"balance": wallet.balance, "audit_head": wallet.audit_head, "updated_at": now}
        if "debt" not in wallet.get_deferred_fields():
            fields["debt"] = wallet.debt
        Wallet.objects.filter(pk=wallet.pk).update(**fields)


@dataclass(frozen=True)
class Booking:
    """What every ledger row of one call shares: when, who acts, and the call's
    reference with the fingerprint of its parameters (a repeated reference replays only
    when the fingerprint matches)."""

    now: datetime
    actor: Any = None
    reference_id: str | None = None
    fingerprint: str = ""

    def row(
        self,
        wallet: Wallet,
        txn_type: str,
        amount: int,
        *,
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
            reference_id=self.reference_id,
            request_fingerprint=self.fingerprint,
            description=description,
            related_transaction=related_transaction,
            transfer_id=transfer_id,
            actor_id=getattr(self.actor, "pk", None),
            created_at=self.now,
        )

    def unreferenced(self) -> Booking:
        """The same time and actor for a row that carries no reference (a transfer's credit)."""
        return Booking(self.now, self.actor)


def row_event(
    wallet: Wallet,
    row: Transaction,
    action: str,
    actor: Any,
    metadata: dict | None,
    *,
    balances: tuple[int, int] | None = None,
) -> AuditEvent:
    """An event about ledger row `row` on `wallet`'s chain (moves the in-memory head):
    the row's own balance move, or `balances` (before, after) for a row that moved none."""
    before, after = balances or (row.balance_after - row.amount, row.balance_after)
    return build_wallet_event(
        wallet=wallet,
        action=action,
        actor=actor,
        transaction_id=row.pk,
        amount=row.amount,
        balance_before=before,
        balance_after=after,
        metadata=metadata,
    )


def audit_events_for(
    rows: list[Transaction], actor: Any, metadata: dict | None = None
) -> list[AuditEvent]:
    """One event per ledger row, plus a suspicious.large_amount flag where it applies."""
    events = []
    threshold = settings.WALLET_LARGE_AMOUNT_THRESHOLD
    for row in rows:
        events.append(row_event(row.wallet, row, f"wallet.{row.type}", actor, metadata))
        if abs(row.amount) >= threshold:
            flag = {"threshold": threshold}
            events.append(row_event(row.wallet, row, "suspicious.large_amount", actor, flag))
    return events


def commit_rows(
    rows: list[Transaction],
    actor: Any,
    now: datetime,
    metadata: dict | None = None,
    crash_at: str = "",
    more_events: Callable[[], list[AuditEvent]] | None = None,
) -> None:
    """Insert the ledger rows, their audit events, and the wallets' new balances (and
    debts).

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
