"""A local Stripe for the purchase tests, and signed webhook deliveries.

`localstripe_url` (session) starts localstripe (scripts/localstripe_server.py) on a free
port; `stripe_local` points the settings at it for one test. The helpers pay, refund
and cancel PaymentIntents through localstripe's real API (the official library), and
`deliver` posts an event to /webhooks/stripe signed exactly as Stripe signs
(`t=<unix time>,v1=<HMAC-SHA256 of "t.body">`). localstripe has no disputes and its
refunds never fail: tests that need those replace the one re-read call
(`_provider.fetch_dispute` / `fetch_refund`) with `DisputeDouble` / a refund double.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import stripe

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_test_suite_current"
PREVIOUS_SECRET = "whsec_test_suite_previous"
_EVENT_IDS = itertools.count(1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_localstripe(port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or _free_port()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "localstripe_server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/v1/customers", auth=("sk_test_probe", ""), timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("localstripe did not start")


@pytest.fixture(scope="session")
def localstripe_url():
    process, url = start_localstripe()
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stripe_local(settings, localstripe_url) -> str:
    settings.STRIPE_API_BASE = localstripe_url
    return localstripe_url


def api() -> stripe.StripeClient:
    from django.conf import settings

    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses={"api": settings.STRIPE_API_BASE}
    )


def pay(payment_id: str, card: str = "4242424242424242") -> dict:
    """Confirm a PaymentIntent with a test card, as the app would with the client secret."""
    client = api()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"},
        }
    )
    client.v1.payment_intents.update(payment_id, params={"payment_method": method.id})
    with contextlib.suppress(stripe.CardError):  # a declined card: the intent says so
        client.v1.payment_intents.confirm(payment_id)
    return client.v1.payment_intents.retrieve(payment_id).to_dict()


def cancel(payment_id: str) -> None:
    api().v1.payment_intents.cancel(payment_id)


def refund(payment_id: str, amount: int) -> dict:
    return (
        api().v1.refunds.create(params={"payment_intent": payment_id, "amount": amount}).to_dict()
    )


def charge_of(payment_id: str) -> str:
    charge = api().v1.payment_intents.retrieve(payment_id).to_dict()["latest_charge"]
    return charge if isinstance(charge, str) else charge["id"]


def signature(payload: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event_body(event_type: str, obj: dict, event_id: str | None = None) -> bytes:
    event = {
        "id": event_id or f"evt_test_{next(_EVENT_IDS)}_{time.monotonic_ns()}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def deliver(client, body: bytes, sig: str | None = "sign", secret: str = SECRET):
    """POST a webhook; `sig="sign"` signs it with `secret`, None sends no signature."""
    headers = {}
    if sig == "sign":
        sig = signature(body, secret)
    if sig is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = sig
    return client.post("/webhooks/stripe", data=body, content_type="application/json", **headers)


class DisputeDouble:
    """Stands in for the provider's dispute re-read (localstripe has no disputes)."""

    def __init__(self) -> None:
        self.disputes: dict[str, tuple[str, int, str]] = {}

    def set(self, dispute_id: str, charge: str, amount: int, status: str) -> dict:
        self.disputes[dispute_id] = (charge, amount, status)
        return {"id": dispute_id, "object": "dispute", "charge": charge, "amount": amount,
                "status": status}  # fmt: skip

    def __call__(self, dispute_id: str):
        from wallet.services._provider import Dispute

        charge, amount, status = self.disputes[dispute_id]
        return Dispute(dispute_id, charge, amount, status)
