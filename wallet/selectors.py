"""Read queries for wallets and their ledger. Nothing here writes or locks."""

from __future__ import annotations

from django.db.models import QuerySet

from wallet.models import Transaction, Wallet


def wallet_for_user(*, user_id: int) -> Wallet:
    """A user's wallet; a new user gets one with 0 points on first read."""
    return Wallet.objects.for_user(user_id)


def transactions_for_user(
    *, user_id: int, txn_type: str | None = None, status: str | None = None
) -> QuerySet[Transaction]:
    """A user's history, newest first (ties broken by id for a stable cursor)."""
    queryset = Transaction.objects.filter(user_id=user_id).order_by("-created_at", "-id")
    if txn_type:
        queryset = queryset.filter(type=txn_type)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


def ledger_sum(*, wallet_id: int) -> int:
    from django.db.models import Sum

    total = (
        Transaction.objects.successful().filter(wallet_id=wallet_id).aggregate(total=Sum("amount"))
    )["total"]
    return total or 0
