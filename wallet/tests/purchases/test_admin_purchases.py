"""The purchases back-office: finance edits a package (audited price history), reads a
purchase, and refunds it through Stripe in two steps; support reads only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from wallet.models import Clawback, PointPackage, Wallet
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.payments import deliver, event_body, pay

pytestmark = pytest.mark.django_db


def test_finance_changes_a_price_and_it_is_audited(package):
    finance = logged_in(staff_in_group("fin", "finance"))
    url = reverse("admin:wallet_pointpackage_change", args=[package.pk])
    data = {"name": "Starter", "points": "1000", "price": "1299", "currency": "usd", "active": "on"}
    assert finance.post(url, data).status_code == 302
    assert PointPackage.objects.get(pk=package.pk).price == 1299
    event = AuditEvent.objects.get(action="package.price_changed")
    assert event.metadata["old"]["price"] == 999 and event.metadata["new"]["price"] == 1299
    assert "1299" in finance.get(url).content.decode()


def test_finance_refunds_a_purchase_in_two_steps(start, client, user):
    purchase = start()
    intent = pay(purchase["provider_payment_id"])
    deliver(client, event_body("payment_intent.succeeded", intent))
    finance = logged_in(staff_in_group("fin", "finance"))
    url = reverse("admin:wallet_purchase_changelist")
    asked = {"action": "refund_through_provider", "_selected_action": [purchase["id"]]}
    first = finance.post(url, asked)
    assert first.status_code == 200 and b"Yes, claw back and refund" in first.content
    assert Wallet.objects.get(user=user).balance == 1000  # nothing yet
    assert finance.post(url, {**asked, "confirm": "yes"}).status_code == 302
    assert Wallet.objects.get(user=user).balance == 0
    assert Clawback.objects.count() == 1
    detail = finance.get(reverse("admin:wallet_purchase_change", args=[purchase["id"]]))
    assert detail.status_code == 200 and b"staff-refund" in detail.content


def test_support_reads_purchases_and_events_but_cannot_refund(start):
    purchase = start()
    support = logged_in(staff_in_group("sup", "support"))
    assert support.get(reverse("admin:wallet_purchase_changelist")).status_code == 200
    assert support.get(reverse("admin:wallet_providerevent_changelist")).status_code == 200
    asked = {"action": "refund_through_provider", "_selected_action": [purchase["id"]],
             "confirm": "yes"}  # fmt: skip
    support.post(reverse("admin:wallet_purchase_changelist"), asked)
    assert Clawback.objects.count() == 0
