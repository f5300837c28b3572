"""The provider's webhook events: verified, stored once by id, then acted on.

`receive_event` verifies the signature (the library's, two secrets while one rotates),
stores the event in the inbox once by its id (a redelivery only counts), and processes a
new one at once. Processing never trusts the event's body: each handler re-reads the
PaymentIntent, charge, refund or dispute from the provider, then calls the one booking
function of its effect (`fulfil_purchase`, `claw_back`, `reverse_clawback`), each keyed
so that a duplicate, a second event id for one payment or an event out of order changes
nothing twice. A processing failure (provider down, a mismatch) is stored with its error
and retried by `process_pending_events` (`manage.py process_provider_events`, the worker).

Part of the wallet.services package (see its __init__).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta

import stripe
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from divine_whispers.errors import InvalidSignature
from wallet.models import ClawbackKind, EventStatus, ProviderEvent, Purchase
from wallet.services import _provider, clawbacks, purchases

logger = logging.getLogger("divine_whispers.payments")

BODY_MAX_CHARS = 1_000_000
ERROR_MAX_CHARS = 2000
IGNORED = "ignored"
# Dispute outcomes after which no clawback is (or stays) due.
DISPUTE_WON = ("won", "warning_closed")


def _text(payload: bytes) -> str:
    """The body as storable text (PostgreSQL text holds no NUL)."""
    return payload.decode("utf-8", "replace").replace("\x00", "\ufffd")[:BODY_MAX_CHARS]


def receive_event(payload: bytes, signature: str | None) -> ProviderEvent:
    """Verify, store once, process if new; raises InvalidSignature (recorded) otherwise."""
    try:
        event = _provider.verify_event(payload, signature)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        ProviderEvent.objects.create(
            body=_text(payload),
            signature_valid=False,
            status=EventStatus.INVALID_SIGNATURE,
            error=str(exc)[:ERROR_MAX_CHARS],
        )
        raise InvalidSignature() from exc
    stored, new = _store(event, payload)
    if new:
        process_event(stored)
    return stored


def _store(event: dict, payload: bytes) -> tuple[ProviderEvent, bool]:
    event_id = str(event.get("id") or "")[:255]
    try:
        with transaction.atomic():
            return ProviderEvent.objects.create(
                event_id=event_id,
                type=str(event.get("type") or "")[:100],
                body=_text(payload),
                signature_valid=True,
                status=EventStatus.RECEIVED,
            ), True
    except IntegrityError:
        ProviderEvent.objects.filter(event_id=event_id).update(deliveries=F("deliveries") + 1)
        return ProviderEvent.objects.get(event_id=event_id), False


def process_event(event: ProviderEvent) -> str:
    """Run the event's handler once more and store the outcome; returns the new status."""
    handler = HANDLERS.get(event.type)
    ProviderEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    if handler is None:
        return _finish(event, EventStatus.IGNORED)
    try:
        obj = json.loads(event.body)["data"]["object"]
        outcome = handler(obj)
    except Exception as exc:  # stored and retried; the provider is answered 2xx anyway
        logger.warning("provider event %s failed: %r", event.event_id, exc)
        return _finish(event, EventStatus.FAILED, f"{type(exc).__name__}: {exc}")
    return _finish(event, EventStatus.IGNORED if outcome == IGNORED else EventStatus.PROCESSED)


def _finish(event: ProviderEvent, status: str, error: str = "") -> str:
    ProviderEvent.objects.filter(pk=event.pk).update(
        status=status, error=error[:ERROR_MAX_CHARS], processed_at=timezone.now()
    )
    event.status, event.error = status, error
    return status


def pending_events(min_age: timedelta = timedelta(0)):
    return ProviderEvent.objects.filter(
        status__in=[EventStatus.RECEIVED, EventStatus.FAILED],
        received_at__lte=timezone.now() - min_age,
    ).order_by("received_at", "id")


def process_pending_events(limit: int = 500, min_age: timedelta = timedelta(0)) -> dict[str, int]:
    """Retry every stored event whose processing did not finish (oldest first). The
    worker passes a `min_age`, leaving a just-received event to its own request; running
    one twice at once is harmless anyway (every effect is keyed)."""
    counts: dict[str, int] = {}
    for event in list(pending_events(min_age)[:limit]):
        status = process_event(event)
        counts[status] = counts.get(status, 0) + 1
    return counts


# --- handlers: re-read from the provider, then book through the one function ------------


def _on_payment_succeeded(obj: dict) -> str | None:
    payment = _provider.fetch_payment(obj["id"])
    if payment.status != "succeeded" or purchases.find_purchase(payment) is None:
        return IGNORED
    purchases.fulfil_purchase(payment=payment)
    return None


def _on_payment_failed(obj: dict) -> str | None:
    payment = _provider.fetch_payment(obj["id"])
    if purchases.find_purchase(payment) is None:
        return IGNORED
    return None if purchases.record_payment_failure(payment=payment) else IGNORED


def _credited_purchase(charge: _provider.Charge) -> Purchase | None:
    """The purchase a charge paid, credited first if the provider says it is paid (a
    refund or dispute may arrive before, or instead of, payment_intent.succeeded)."""
    if not charge.payment_intent:
        return None
    payment = _provider.fetch_payment(charge.payment_intent)
    purchase = purchases.find_purchase(payment)
    if purchase is None:
        return None
    if purchase.credit_id is None and payment.status == "succeeded":
        purchase = purchases.fulfil_purchase(payment=payment).purchase
    return purchase if purchase.credit_id is not None else None


def apply_refunds(charge: _provider.Charge) -> int:
    """One clawback per refund of the charge not yet clawed back (its share of the
    cumulative refunded money, computed under the lock by `claw_back`)."""
    purchase = _credited_purchase(charge)
    if purchase is None:
        return 0
    booked = 0
    for refund in charge.refunds:
        if refund.status not in ("succeeded", "pending"):
            continue
        result = clawbacks.claw_back(
            purchase_id=purchase.pk,
            kind=ClawbackKind.REFUND,
            # A staff refund clawed its points back before asking the provider.
            source_id=refund.clawback or refund.id,
            money=refund.amount,
        )
        booked += 0 if result.replayed else 1
    return booked


def _on_charge_refunded(obj: dict) -> str | None:
    charge = _provider.fetch_charge(obj["id"])
    return None if apply_refunds(charge) or _credited_purchase(charge) else IGNORED


def apply_dispute(dispute: _provider.Dispute) -> str | None:
    """A dispute standing (open or lost) claws back once; one won reverses that."""
    charge = _provider.fetch_charge(dispute.charge)
    purchase = _credited_purchase(charge)
    if purchase is None:
        return IGNORED
    if dispute.status in DISPUTE_WON:
        clawbacks.reverse_clawback(source_id=dispute.id)
        return None
    clawbacks.claw_back(
        purchase_id=purchase.pk,
        kind=ClawbackKind.DISPUTE,
        source_id=dispute.id,
        money=dispute.amount,
    )
    return None


def _on_dispute(obj: dict) -> str | None:
    return apply_dispute(_provider.fetch_dispute(obj["id"]))


def _on_refund_failed(obj: dict) -> str | None:
    refund = _provider.fetch_refund(obj["id"])
    if refund.status not in ("failed", "canceled"):
        return IGNORED
    reversed_ = clawbacks.reverse_clawback(source_id=refund.clawback or refund.id)
    return None if reversed_ else IGNORED


HANDLERS: dict[str, Callable[[dict], str | None]] = {
    "payment_intent.succeeded": _on_payment_succeeded,
    "payment_intent.payment_failed": _on_payment_failed,
    "payment_intent.canceled": _on_payment_failed,
    "charge.refunded": _on_charge_refunded,
    "charge.dispute.created": _on_dispute,
    "charge.dispute.closed": _on_dispute,
    "refund.failed": _on_refund_failed,
}
