"""The payment provider (Stripe), through its official library: the few calls purchases
make, each answering plain snapshots, and every way the provider fails to answer turned
into `provider_unavailable`.

Nothing here touches the database: callers call the provider outside their transaction,
then book what the provider reported under the wallet lock. `STRIPE_API_BASE` points the
library at a local Stripe (localstripe) in development, tests and drills.

Private to the wallet.services package. Tests replace `fetch_dispute` (localstripe has no
disputes) with a double that answers what the test's signed event says.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import stripe
from django.conf import settings

from divine_whispers.errors import ProviderUnavailable

# Errors meaning the provider did not answer (or not usefully): nothing was charged by us.
_UNAVAILABLE = (
    stripe.APIConnectionError,
    stripe.RateLimitError,
    stripe.AuthenticationError,
    stripe.APIError,
)


class ProviderRefused(Exception):
    """The provider answered with a refusal (4xx: unknown object, bad request)."""


@dataclass(frozen=True)
class Payment:
    """A PaymentIntent as the provider reports it."""

    id: str
    status: str
    amount: int
    currency: str
    metadata: dict[str, str]
    client_secret: str = ""
    charge_id: str | None = None

    @property
    def purchase_id(self) -> int | None:
        value = self.metadata.get("purchase_id", "")
        return int(value) if value.isdigit() else None


@dataclass(frozen=True)
class RefundInfo:
    id: str
    amount: int
    status: str
    created: int
    # The clawback a staff refund booked before asking the provider (our metadata).
    clawback: str = ""


def _refund(refund: dict) -> RefundInfo:
    metadata = refund.get("metadata") or {}
    return RefundInfo(
        refund["id"],
        int(refund["amount"]),
        refund["status"],
        int(refund.get("created") or 0),
        clawback=str(metadata.get("dw_clawback", "")),
    )


@dataclass(frozen=True)
class Charge:
    id: str
    payment_intent: str | None
    amount: int
    amount_refunded: int
    refunds: list[RefundInfo] = field(default_factory=list)


@dataclass(frozen=True)
class Dispute:
    id: str
    charge: str
    amount: int
    status: str


def client() -> stripe.StripeClient:
    if not settings.PAYMENTS_ENABLED or not settings.STRIPE_SECRET_KEY:
        raise ProviderUnavailable("Purchases are not enabled on this server.")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
        max_network_retries=1,
    )


def _call(function, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except _UNAVAILABLE as exc:
        raise ProviderUnavailable(provider_error=type(exc).__name__) from exc
    except stripe.StripeError as exc:
        raise ProviderRefused(str(exc)) from exc


def _id_of(value: Any) -> str | None:
    """An id, or the id of an expanded object (localstripe expands `latest_charge`)."""
    if value is None or isinstance(value, str):
        return value
    return value["id"]


def _payment(intent: Any) -> Payment:
    return Payment(
        id=intent["id"],
        status=intent["status"],
        amount=int(intent["amount"]),
        currency=str(intent["currency"]).lower(),
        metadata=dict(intent["metadata"] or {}),
        client_secret=intent["client_secret"] or "",
        charge_id=_id_of(intent.get("latest_charge")),
    )


def idempotency_key(user_id: int, reference_id: str | None, purchase_id: int) -> str:
    """The provider's idempotency key of one purchase: derived from our reference (the
    same reference always asks for the same PaymentIntent), else from the purchase."""
    if reference_id is None:
        return f"dw-purchase-{purchase_id}"
    digest = hashlib.sha256(f"{user_id}:{reference_id}".encode()).hexdigest()[:40]
    return f"dw-ref-{digest}"


def create_payment(
    *, amount: int, currency: str, purchase_id: int, user_id: int, key: str
) -> Payment:
    params = {
        "amount": amount,
        "currency": currency,
        "metadata": {"purchase_id": str(purchase_id), "user_id": str(user_id)},
    }
    intent = _call(
        client().v1.payment_intents.create, params=params, options={"idempotency_key": key}
    )
    return _payment(intent.to_dict())


def fetch_payment(payment_id: str) -> Payment:
    return _payment(_call(client().v1.payment_intents.retrieve, payment_id).to_dict())


def fetch_charge(charge_id: str) -> Charge:
    api = client()
    charge = _call(api.v1.charges.retrieve, charge_id).to_dict()
    listed = _call(api.v1.refunds.list, params={"charge": charge_id, "limit": 100}).to_dict()
    refunds = [_refund(r) for r in listed["data"]]
    return Charge(
        id=charge["id"],
        payment_intent=_id_of(charge.get("payment_intent")),
        amount=int(charge["amount"]),
        amount_refunded=int(charge.get("amount_refunded") or 0),
        refunds=sorted(refunds, key=lambda r: (r.created, r.id)),
    )


def fetch_refund(refund_id: str) -> RefundInfo:
    return _refund(_call(client().v1.refunds.retrieve, refund_id).to_dict())


def fetch_dispute(dispute_id: str) -> Dispute:
    dispute = _call(client().v1.disputes.retrieve, dispute_id).to_dict()
    return Dispute(
        dispute["id"], _id_of(dispute["charge"]), int(dispute["amount"]), dispute["status"]
    )


def create_refund(*, payment_id: str, amount: int, clawback: str) -> RefundInfo:
    """Refund `amount` of a payment; `clawback` (the points already taken back) is the
    idempotency key and rides in the refund's metadata, so its webhook finds it."""
    refund = _call(
        client().v1.refunds.create,
        params={
            "payment_intent": payment_id,
            "amount": amount,
            "metadata": {"dw_clawback": clawback},
        },
        options={"idempotency_key": clawback},
    ).to_dict()
    return _refund(refund)


def verify_event(payload: bytes, signature: str | None) -> dict:
    """The event, if `signature` is valid under one of the webhook secrets (two while one
    is rotated) within the tolerance; raises stripe.SignatureVerificationError otherwise."""
    secrets = [s.strip() for s in settings.STRIPE_WEBHOOK_SECRET.split(",") if s.strip()]
    if not secrets or not signature:
        raise stripe.SignatureVerificationError("No signature or no secret", signature)
    last: Exception | None = None
    for secret in secrets:
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as exc:
            last = exc
            continue
        return event.to_dict()
    raise last  # type: ignore[misc]
