"""Counting and logging every money operation, in one place: around the service functions.

Private to the wallet.services package. `@observed("spend")` wraps an operation of the
package, so every caller — the API, the admin, the job worker, management commands — is
counted and logged the same way, and nothing else in the code base has to remember to
do it. The outcome is `ok`,
`replayed`, or the refusal's contract error code; points are counted only for rows a
call actually committed (a replay moved nothing).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DatabaseError

from divine_whispers.errors import DomainError
from divine_whispers.observability import metrics
from divine_whispers.observability.logs import safe_fields

logger = logging.getLogger("divine_whispers.money")

F = TypeVar("F", bound=Callable[..., Any])

_ROW_ATTRIBUTES = ("transaction", "debit", "credit")
_SUBJECT_ARGUMENTS = ("user", "sender")


def _rows(result: Any) -> list[Any]:
    return [row for name in _ROW_ATTRIBUTES if (row := getattr(result, name, None)) is not None]


def _id_of(value: Any) -> Any:
    return getattr(value, "pk", value) if value is not None else None


def _subject(kwargs: dict[str, Any]) -> Any:
    """The user the call acts for, as an id (never the object: logs hold plain values)."""
    for name in _SUBJECT_ARGUMENTS:
        if name in kwargs:
            subject = _id_of(kwargs[name])
            return subject if isinstance(subject, int) else None
    return None


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.code
    if isinstance(exc, DatabaseError):
        return "service_unavailable"
    return "internal_error"


def _log(operation: str, outcome: str, started: float, kwargs: dict, rows: list) -> None:
    fields: dict[str, Any] = {
        "event": "money_operation",
        "operation": operation,
        "outcome": outcome,
        "user_id": _subject(kwargs),
        "duration_ms": round((time.monotonic() - started) * 1000, 2),
    }
    if rows:
        fields["transactions"] = [
            {"id": r.pk, "wallet_id": r.wallet_id, "type": r.type, "amount": r.amount} for r in rows
        ]
    level = logging.INFO if outcome in ("ok", "replayed") else logging.WARNING
    # Safe by construction: operation names and outcome codes are constants, the rest ids
    # and numbers (no regex redaction on the hot path).
    logger.log(level, "%s %s", operation, outcome, extra=safe_fields(**fields))


def observed(operation: str) -> Callable[[F], F]:
    """Count (`divine_whispers_operations_total`, `_points_total`) and log one operation."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                outcome = _outcome_of(exc)
                metrics.record_operation(operation, outcome)
                _log(operation, outcome, started, kwargs, [])
                raise
            replayed = bool(getattr(result, "replayed", False))
            rows = _rows(result)
            if not replayed:
                for row in rows:
                    metrics.record_points(row.type, row.amount)
            outcome = "replayed" if replayed else "ok"
            metrics.record_operation(operation, outcome)
            _log(operation, outcome, started, kwargs, rows)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
