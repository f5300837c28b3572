"""Deposits: points credited after a payment, keyed by the payment's reference.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from divine_whispers.db.transactions import Rejection, run_atomically
from divine_whispers.money import (
    DESCRIPTION_MAX_LENGTH,
    validate_positive_amount,
    validate_reference,
    validate_text,
)
from wallet.models import (
    LotKind,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _checks, _debt, _lots, _minting
from wallet.services._observed import observed
from wallet.services.results import OperationResult


@observed("deposit")
def deposit(
    *,
    user: Any,
    amount: Any,
    reference_id: Any,
    actor: AbstractBaseUser | None = None,
    description: Any = "",
) -> OperationResult:
    """Credit points after a real payment; `reference_id` is the payment's id.

    The payment service account's operation: a staff member (superusers included) is
    refused (`permission_denied`), and so is a deposit into the actor's own wallet
    (`self_dealing_forbidden`), each audited. No actor: the system (operators' tools).
    """
    amount = validate_positive_amount(amount, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    reference_id = validate_reference(reference_id, required=True)
    description = validate_text(
        description, field="description", required=False, max_length=DESCRIPTION_MAX_LENGTH
    )
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(op="deposit", amount=amount, description=description)

    def operation() -> OperationResult | Rejection:
        wallet = Wallet.objects.lock_for_user(user_id)
        earlier = _checks.find_replay(wallet, TransactionType.DEPOSIT, reference_id, fingerprint)
        if earlier is not None:
            return OperationResult(earlier, replayed=True)
        refusal = _minting.deposit_refusal(wallet, actor, amount)
        if refusal is not None:
            return refusal
        now = timezone.now()
        booking = _booking.Booking(now, actor, reference_id, fingerprint)
        row = booking.row(wallet, TransactionType.DEPOSIT, amount, description=description)
        _booking.commit_rows([row], actor, now)
        _lots.credit_lot(wallet=wallet, transaction=row, kind=LotKind.PAID)
        _debt.settle(wallet=wallet, credit=row, actor=actor, now=now)
        return OperationResult(row)

    return run_atomically(operation)
