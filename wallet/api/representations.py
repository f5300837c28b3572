"""The answers of the hottest endpoints (balance, spend) as plain functions.

`BalanceSerializer`, `TransactionSerializer` and `JobSerializer` stay the definition of
these representations — the OpenAPI schema is generated from them, and every other
endpoint renders with them. On `GET /wallet/balance` and `POST /wallet/spend`, though,
walking DRF's fields cost more CPU than the wallet read itself (the HTTP profile, see
docs/performance.md), so these functions build the same dictionaries directly, value by
value as DRF's fields would (ISO 8601 datetimes in the current time zone with `Z` for
UTC, UUIDs as text, choices as their values). A test holds each one equal to its
serializer on real rows (wallet/tests/api/test_representations.py), so a field added to
a serializer and not here fails it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from jobs.models import Job
from wallet.models import Transaction, TransactionType, Wallet


def _datetime(value: datetime | None) -> str | None:
    """As DRF's DateTimeField (ISO 8601, in the current time zone, `Z` for UTC)."""
    if not value:
        return None
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def balance_data(wallet: Wallet, split: Any) -> dict[str, Any]:
    """`BalanceSerializer(wallet, context={"split": split}).data` (`split`: a
    `selectors.LotSplit`)."""
    return {
        "user_id": wallet.user_id,
        "balance": wallet.balance,
        "paid": split.paid,
        "promotional": split.promotional,
        "expiring": [
            {"amount": entry["amount"], "expires_at": _datetime(entry["expires_at"])}
            for entry in split.expiring
        ],
        "updated_at": _datetime(wallet.updated_at),
    }


def transaction_data(txn: Transaction, *, job_id: int | None) -> dict[str, Any]:
    """`TransactionSerializer(txn, context={"job_id": job_id}).data` (the job's id comes
    from the service's result: no query after the COMMIT)."""
    return {
        "id": txn.pk,
        "user_id": txn.user_id,
        "type": _text(txn.type),
        "amount": txn.amount,
        "status": _text(txn.status),
        "balance_after": txn.balance_after,
        "reference_id": _text(txn.reference_id),
        "description": _text(txn.description),
        "related_transaction_id": txn.related_transaction_id,
        "transfer_id": _text(txn.transfer_id),
        "job_id": job_id if txn.type == TransactionType.SPEND else None,
        "created_at": _datetime(txn.created_at),
    }


def job_data(job: Job) -> dict[str, Any]:
    """`JobSerializer(job).data`."""
    return {
        "id": job.pk,
        "user_id": job.user_id,
        "job_type": _text(job.job_type.code),
        "status": _text(job.status),
        "points_used": job.points_used,
        "input": job.input,
        "result": job.result,
        "error": _text(job.error),
        "transaction_id": job.transaction_id,
        "created_at": _datetime(job.created_at),
        "started_at": _datetime(job.started_at),
        "finished_at": _datetime(job.finished_at),
    }
