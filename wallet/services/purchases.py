"""Purchases: point packages (their audited prices), starting a purchase at the provider,
and the one fulfilment function that credits a paid purchase exactly once.

`fulfil_purchase` is the only code that books a `purchase` row. The webhook, the
reconciliation and any replay call it with the PaymentIntent as the provider reported it;
under the wallet lock it credits the package's points once (the purchase row's
`credit`, and the ledger's unique index on the payment id, make a second credit
impossible), or answers the credit already booked.

Part of the wallet.services package (see its __init__): the only code that writes money.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import record_system_event
from divine_whispers.db.transactions import run_atomically
from divine_whispers.errors import (
    IdempotencyKeyReused,
    InactivePackage,
    NotFound,
    ValidationFailed,
)
from divine_whispers.money import validate_positive_amount, validate_reference
from wallet.models import (
    LotKind,
    PointPackage,
    Purchase,
    PurchaseStatus,
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.services import _booking, _checks, _debt, _lots, _provider
from wallet.services._observed import observed

PACKAGE_PRICE_CHANGED = "package.price_changed"
# A provider payment that is not (or no longer) one we may credit.
UNPAID_STATUSES = ("requires_payment_method", "canceled")


class PaymentMismatch(Exception):
    """The provider's payment does not match the purchase (amount, currency or id):
    never credited; the event is recorded as failed and reconciliation reports it."""


@dataclass
class PurchaseResult:
    purchase: Purchase
    replayed: bool = False


@dataclass
class FulfilResult:
    purchase: Purchase
    transaction: Transaction
    replayed: bool = False


def save_package(*, package: PointPackage, actor: AbstractBaseUser | None) -> AuditEvent | None:
    """Save a package; a new or changed price or points writes a `package.price_changed`
    event in the same transaction (the row locked while the old values are read)."""
    validate_positive_amount(package.points, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT)
    validate_positive_amount(package.price, maximum=10**12, field="price")
    with transaction.atomic():
        old = None
        if package.pk is not None:
            old = (
                PointPackage.objects.select_for_update()
                .filter(pk=package.pk)
                .values("price", "points", "currency")
                .first()
            )
        package.save()
        new = {"price": package.price, "points": package.points, "currency": package.currency}
        if old == new:
            return None
        return record_system_event(
            action=PACKAGE_PRICE_CHANGED,
            actor=actor,
            metadata={"code": package.code, "old": old, "new": new},
        )


def _package(code: Any) -> PointPackage:
    if not isinstance(code, str) or not code:
        raise ValidationFailed("package must be a package code.", field="package")
    found = PointPackage.objects.filter(code=code).first()
    if found is None:
        raise ValidationFailed(f"Unknown package {code!r}.", field="package")
    if not found.active:
        raise InactivePackage(package=code)
    return found


def _recorded_purchase(
    user_id: int, package: PointPackage, reference_id: str | None, fingerprint: str
) -> tuple[Purchase, bool]:
    """The purchase for this reference: the earlier one (True), or a new pending one."""
    if reference_id is not None:
        earlier = Purchase.objects.filter(user_id=user_id, reference_id=reference_id).first()
        if earlier is not None:
            if earlier.request_fingerprint != fingerprint:
                raise IdempotencyKeyReused(reference_id=reference_id)
            return earlier, True
    try:
        with transaction.atomic():
            return Purchase.objects.create(
                user_id=user_id,
                package=package,
                points=package.points,
                amount=package.price,
                currency=package.currency,
                reference_id=reference_id,
                request_fingerprint=fingerprint,
            ), False
    except IntegrityError:  # an identical request won the race: replay it
        return _recorded_purchase(user_id, package, reference_id, fingerprint)


@observed("purchase_start")
def start_purchase(*, user: Any, package: Any, reference_id: Any = None) -> PurchaseResult:
    """Record a pending purchase at the package's price and create its PaymentIntent.

    The purchase row commits first, so its id is in the PaymentIntent's metadata and a
    webhook that arrives before this call returns finds it. The provider's idempotency
    key is derived from our reference: retrying after `provider_unavailable` asks for the
    same PaymentIntent. Nothing is credited here; only `fulfil_purchase` credits.
    """
    reference_id = validate_reference(reference_id)
    chosen = _package(package)
    user_id = _checks.checked_user_id(user)
    fingerprint = _checks.fingerprint_of(op="purchase", package=chosen.code)
    purchase, earlier = _recorded_purchase(user_id, chosen, reference_id, fingerprint)
    if purchase.provider_payment_id:
        return PurchaseResult(purchase, replayed=True)
    payment = _provider.create_payment(
        amount=purchase.amount,
        currency=purchase.currency,
        purchase_id=purchase.pk,
        user_id=user_id,
        key=_provider.idempotency_key(user_id, reference_id, purchase.pk),
    )
    with transaction.atomic():
        Purchase.objects.filter(pk=purchase.pk, provider_payment_id__isnull=True).update(
            provider_payment_id=payment.id, client_secret=payment.client_secret
        )
        purchase.refresh_from_db()
    return PurchaseResult(purchase, replayed=earlier)


def find_purchase(payment: _provider.Payment) -> Purchase | None:
    """Our purchase of a provider payment: by its id, else by the id in its metadata (a
    webhook may arrive before `start_purchase` stored the payment id)."""
    found = Purchase.objects.filter(provider_payment_id=payment.id).first()
    if found is None and payment.purchase_id is not None:
        found = Purchase.objects.filter(pk=payment.purchase_id).first()
    return found


def _purchase_of(payment: _provider.Payment) -> Purchase:
    found = find_purchase(payment)
    if found is None:
        raise NotFound(f"No purchase for payment {payment.id}.", payment=payment.id)
    return found


def _check_matches(purchase: Purchase, payment: _provider.Payment) -> None:
    if purchase.provider_payment_id not in (None, payment.id):
        raise PaymentMismatch(f"purchase {purchase.pk} belongs to {purchase.provider_payment_id}")
    if (payment.amount, payment.currency) != (purchase.amount, purchase.currency):
        raise PaymentMismatch(
            f"payment {payment.id} is {payment.amount} {payment.currency}, purchase "
            f"{purchase.pk} costs {purchase.amount} {purchase.currency}"
        )


@observed("purchase")
def fulfil_purchase(*, payment: _provider.Payment) -> FulfilResult:
    """Credit the purchase paid by `payment` (as the provider reports it), exactly once.

    Under the wallet lock (then the purchase's row lock): a purchase already credited
    answers its credit (`replayed`); otherwise the package's points are booked as one
    `purchase` row keyed by the payment id, with its paid lot and its audit event; any
    debt of the wallet is paid first from it (a `clawback` row in the same transaction).
    """
    if payment.status != "succeeded":
        raise PaymentMismatch(f"payment {payment.id} is {payment.status}, not succeeded")

    def operation() -> FulfilResult:
        found = _purchase_of(payment)
        wallet = Wallet.objects.lock_for_user(found.user_id)
        purchase = Purchase.objects.select_for_update().get(pk=found.pk)
        if purchase.credit_id is not None:
            return FulfilResult(purchase, purchase.credit, replayed=True)
        _check_matches(purchase, payment)
        now = timezone.now()
        fingerprint = _checks.fingerprint_of(op="purchase", purchase=purchase.pk)
        booking = _booking.Booking(now, None, payment.id, fingerprint)
        row = booking.row(
            wallet,
            TransactionType.PURCHASE,
            purchase.points,
            description=f"Purchase #{purchase.pk}: {purchase.package.name}",
        )
        metadata = {"purchase_id": purchase.pk, "provider_payment_id": payment.id}
        _booking.commit_rows([row], None, now, metadata)
        _lots.credit_lot(wallet=wallet, transaction=row, kind=LotKind.PAID)
        _debt.settle(wallet=wallet, credit=row, actor=None, now=now)
        purchase.credit = row
        purchase.provider_payment_id = payment.id
        if purchase.status in (PurchaseStatus.PENDING, PurchaseStatus.FAILED):
            purchase.status = PurchaseStatus.PAID
        purchase.save(update_fields=["credit", "provider_payment_id", "status", "updated_at"])
        return FulfilResult(purchase, row)

    return run_atomically(operation)


def record_payment_failure(*, payment: _provider.Payment) -> Purchase | None:
    """A payment the provider reports failed or cancelled: its uncredited purchase reads
    `failed` / `cancelled`. A paid purchase never moves back (events arrive out of order)."""
    if payment.status not in UNPAID_STATUSES:
        return None
    with transaction.atomic():
        found = _purchase_of(payment)
        purchase = Purchase.objects.select_for_update().get(pk=found.pk)
        if purchase.credit_id is None and purchase.status == PurchaseStatus.PENDING:
            failed = payment.status == "requires_payment_method"
            purchase.status = PurchaseStatus.FAILED if failed else PurchaseStatus.CANCELLED
            purchase.save(update_fields=["status", "updated_at"])
        return purchase
