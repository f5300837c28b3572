"""What the money operations return: the rows they booked, and whether it was a replay.

Part of the wallet.services package (see its __init__).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jobs.models import Job
from wallet.models import Transaction


@dataclass
class OperationResult:
    transaction: Transaction
    replayed: bool = False


@dataclass
class SpendResult:
    transaction: Transaction
    job: Job
    replayed: bool = False

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as `(transaction, job)`, the contract's return value."""
        return iter((self.transaction, self.job))


@dataclass
class TransferResult:
    debit: Transaction
    credit: Transaction
    replayed: bool = False


@dataclass
class JobRefundResult:
    job: Job
    transaction: Transaction | None
    replayed: bool = False
