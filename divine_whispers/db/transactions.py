"""One DB transaction per operation, retried only on serialization failure/deadlock.

The wallet and audit services run their writes through `run_atomically`;
it lives in the project package, not in an app, so the audit leaf does not depend on
the wallet app that records into it.

Retrying is only safe when the whole transaction is ours: inside an outer
`atomic()` block the failed statement has already doomed the caller's transaction,
so there we run once and let the error propagate.
"""

from __future__ import annotations

import contextvars
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings
from django.db import OperationalError, connection, transaction

from divine_whispers.db.faults import crash_point

logger = logging.getLogger(__name__)

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected

T = TypeVar("T")

# Whether the running request has sent a COMMIT (or is sending one). A database error
# after that point cannot say whether the change was applied: the API answers 503 with
# `details.outcome = "unknown"` instead of "not_applied" (divine_whispers/api/exceptions.py).
# Reset at the start of every request (wallet/apps.py), so it never leaks between them.
_commit_sent: contextvars.ContextVar[bool] = contextvars.ContextVar("commit_sent", default=False)


def commit_sent() -> bool:
    """True once this request (or command) has sent a COMMIT of a money operation."""
    return _commit_sent.get()


def reset_commit_sent(**_: object) -> None:
    """A new request starts: nothing of it has been committed (request_started receiver)."""
    _commit_sent.set(False)


@dataclass(frozen=True)
class Rejection:
    """A refusal whose audit event must still be committed (e.g. insufficient balance).

    The operation returns it instead of raising, so the transaction commits the audit
    event alone; `run_atomically` raises the error once the commit has happened.
    """

    error: Exception  # a domain error (divine_whispers/errors.py)


def is_retryable(exc: BaseException) -> bool:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES


def _raise_rejection(outcome: T) -> T:
    if isinstance(outcome, Rejection):
        raise outcome.error
    return outcome


def run_atomically(operation: Callable[[], T]) -> T:
    """Run `operation` in its own transaction; retry 40001/40P01 a bounded number of times."""
    if connection.in_atomic_block:
        with transaction.atomic():
            outcome = operation()
        return _raise_rejection(outcome)
    attempts = max(1, settings.WALLET_TRANSACTION_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                crash_point("atomic.begin")  # test-only (faults.py): nothing sent yet
                outcome = operation()
                _commit_sent.set(True)  # only the COMMIT is left: a failure now is "unknown"
                crash_point("atomic.commit")  # test-only: the connection dies as COMMIT goes
            crash_point("committed")  # test-only (faults.py): committed, not answered
        except OperationalError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            _commit_sent.set(False)  # a serialization failure or deadlock rolled it all back
            logger.warning("retrying after %s (attempt %d/%d)", exc.__cause__, attempt, attempts)
            time.sleep(random.uniform(0, 0.01 * 2**attempt))
            continue
        return _raise_rejection(outcome)
    raise AssertionError("unreachable")  # pragma: no cover
