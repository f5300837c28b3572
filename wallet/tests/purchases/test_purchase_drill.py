"""The purchase drill: many purchases, refunds and disputes through localstripe, their
webhooks duplicated, reordered and dropped, then reconciliation; the ledger must equal
what the provider says, with no double credit.

The default suite runs a short drill (20 purchases); `make purchase-drill` runs the long
one (`DRILL_PURCHASES`, default 300) and prints its figures. Dropped `succeeded` events
are never delivered (reconciliation must credit them); dropped refund and dispute events
are delivered late, after everything else, as the provider's retries would.
"""

from __future__ import annotations

import os
import random
from collections import Counter

import pytest
from django.test import Client
from django.utils import timezone

from divine_whispers.errors import InsufficientBalance, WalletInDebt
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Clawback, ClawbackKind, Purchase, Transaction, TransactionType, Wallet
from wallet.services import _provider
from wallet.services.clawbacks import points_for
from wallet.tests.factories import UserFactory
from wallet.tests.payments import DisputeDouble, charge_of, deliver, event_body, pay, refund
from wallet.verification import verify_ledger

DECLINED = "4000000000000341"


def _drill(count: int, disputes: DisputeDouble, seed: int) -> Counter:
    rng = random.Random(seed)
    figures: Counter = Counter()
    JobTypeFactory(code="drill-reading", price=300)
    buyers = [UserFactory() for _ in range(max(2, count // 10))]
    first, late, spent = [], [], Counter()

    def queue(body: bytes, droppable: bool = True, retried: bool = False) -> None:
        roll = rng.random()
        if droppable and roll < (0.35 if retried else 0.1):
            figures["events dropped"] += 1
            if retried:
                late.append(body)
            return
        copies = 1 + (rng.random() < 0.3) * rng.randint(1, 3)
        figures["events duplicated"] += copies - 1
        first.extend([body] * copies)

    for index in range(count):
        buyer = rng.choice(buyers)
        purchase = services.start_purchase(user=buyer, package="drill", reference_id=f"d{index}")
        payment_id = purchase.purchase.provider_payment_id
        figures["purchases"] += 1
        if rng.random() < 0.1:
            intent = pay(payment_id, card=DECLINED)
            queue(event_body("payment_intent.payment_failed", intent), droppable=False)
            figures["declined"] += 1
            continue
        intent = pay(payment_id)
        figures["paid"] += 1
        queue(event_body("payment_intent.succeeded", intent))
        charge = charge_of(payment_id)
        roll = rng.random()
        if roll < 0.25:
            refund(payment_id, rng.choice([300, 500, 999]))
            if rng.random() < 0.3:
                refund(payment_id, 100)
            queue(event_body("charge.refunded", {"id": charge}), retried=True)
            figures["refunded purchases"] += 1
        elif roll < 0.4:
            status = rng.choice(["needs_response", "won", "lost"])
            dispute_id = f"dp_drill_{index}"
            opened = disputes.set(dispute_id, charge, 999, "needs_response")
            queue(event_body("charge.dispute.created", opened), retried=True)
            if status != "needs_response":
                closed = disputes.set(dispute_id, charge, 999, status)
                queue(event_body("charge.dispute.closed", closed), retried=True)
            figures[f"disputes {status}"] += 1
    rng.shuffle(first)
    figures["events reordered"] = len(first)
    client = Client()
    for body in first:
        assert deliver(client, body).status_code == 200
        figures["events delivered"] += 1
    # Spends before the late deliveries: a late clawback then leaves some wallets in debt.
    for buyer in buyers:
        for _ in range(rng.randint(0, 4)):
            try:
                services.spend(user=buyer, job_type="drill-reading")
            except (InsufficientBalance, WalletInDebt):  # refused: nothing moved
                figures["spends refused"] += 1
                break
            spent[buyer.pk] += 300
            figures["spends"] += 1
    for body in late + late[: len(late) // 2]:  # delivered late, some of them twice
        assert deliver(client, body).status_code == 200
        figures["events delivered"] += 1
        assert deliver(client, body).status_code == 200
    figures["events duplicated"] += len(late) // 2
    report = services.reconcile_payments(since=timezone.now() - timezone.timedelta(days=1))
    figures["credited by reconciliation"] = len(report.credited)
    assert report.findings == []
    _assert_ledger_matches_provider(buyers, spent, figures)
    return figures


def _expected_owed(purchase: Purchase, disputes: DisputeDouble) -> int:
    """The points the provider's state says were taken back from this purchase."""
    charge = _provider.fetch_charge(charge_of(purchase.provider_payment_id))
    refunded = sum(r.amount for r in charge.refunds if r.status == "succeeded")
    owed = points_for(purchase, refunded)
    for _dispute_id, (charge_id, amount, status) in disputes.disputes.items():
        if charge_id == charge.id and status != "won":
            owed += points_for(purchase, amount)
    return owed


def _assert_ledger_matches_provider(buyers, spent: Counter, figures: Counter) -> None:
    credits = Transaction.objects.filter(type=TransactionType.PURCHASE)
    payment_ids = [c.reference_id for c in credits]
    figures["double credits"] = len(payment_ids) - len(set(payment_ids))
    assert figures["double credits"] == 0
    disputes = _provider.fetch_dispute
    for buyer in buyers:
        wallet = Wallet.objects.get(user=buyer)
        purchased = owed = 0
        for purchase in Purchase.objects.filter(user=buyer):
            paid = _provider.fetch_payment(purchase.provider_payment_id).status == "succeeded"
            assert (purchase.credit_id is not None) == paid
            if paid:
                purchased += purchase.points
                owed += _expected_owed(purchase, disputes)
        assert wallet.balance - wallet.debt == purchased - spent[buyer.pk] - owed, buyer.pk
        figures["debt (points owed at the end)"] += wallet.debt
    figures["credits"] = credits.count()
    figures["clawbacks"] = Clawback.objects.count()
    figures["clawbacks of refunds"] = Clawback.objects.filter(kind=ClawbackKind.REFUND).count()
    figures["reversals"] = Clawback.objects.filter(reversed=True).count()
    figures["debt repayments"] = Transaction.objects.filter(
        type=TransactionType.CLAWBACK, description="Debt repaid"
    ).count()
    report = verify_ledger()
    assert report.clean, [f.line() for f in report.findings]


@pytest.fixture
def drill_world(db, stripe_local, monkeypatch):
    from wallet.models import PointPackage

    PointPackage.objects.create(code="drill", name="Drill", points=1000, price=999)
    double = DisputeDouble()
    monkeypatch.setattr(_provider, "fetch_dispute", double)
    return double


def _print(figures: Counter) -> None:
    print("\npurchase drill:", ", ".join(f"{k} {v}" for k, v in sorted(figures.items())))


def test_short_purchase_drill(drill_world):
    _print(_drill(20, drill_world, seed=int(os.environ.get("DRILL_SEED", "21"))))


@pytest.mark.stress
def test_purchase_drill(drill_world):
    count = int(os.environ.get("DRILL_PURCHASES", "300"))
    _print(_drill(count, drill_world, seed=int(os.environ.get("DRILL_SEED", "2026"))))
