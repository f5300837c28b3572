"""Exactly once under real concurrency: the webhook racing reconcile_payments from 8
threads (each its own connection) credits one purchase once; and reconciliation's own
findings (a credit the provider does not call paid, a refund never clawed back)."""

from __future__ import annotations

import threading

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import Client
from django.utils import timezone

from wallet import services
from wallet.models import Purchase, Transaction, TransactionType, Wallet
from wallet.services import _provider
from wallet.tests.payments import deliver, event_body, pay, refund
from wallet.verification import verify_ledger


def _clean() -> None:
    report = verify_ledger()
    assert report.clean, [f.line() for f in report.findings]


@pytest.mark.django_db(transaction=True)
def test_webhook_racing_reconcile_from_8_threads_credits_once(start, user):
    purchase = start("race")
    intent = pay(purchase["provider_payment_id"])
    bodies = [event_body("payment_intent.succeeded", intent) for _ in range(2)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            if index % 2:
                response = deliver(Client(), bodies[index % 4 // 2])
                assert response.status_code == 200, response.content
            else:
                services.reconcile_payments(since=timezone.now() - timezone.timedelta(days=1))
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    credits = Transaction.objects.filter(type=TransactionType.PURCHASE)
    assert [(c.user_id, c.amount) for c in credits] == [(user.pk, 1000)]
    assert Wallet.objects.get(user=user).balance == 1000
    assert Purchase.objects.get(pk=purchase["id"]).credit_id == credits[0].pk
    _clean()


@pytest.mark.django_db
def test_reconcile_credits_a_paid_purchase_the_webhook_missed(start, user):
    purchase = start()
    pay(purchase["provider_payment_id"])  # the webhook is dropped
    call_command("reconcile_payments", "--since", "3d")
    assert Wallet.objects.get(user=user).balance == 1000
    call_command("reconcile_payments", "--since", "3d")  # a second run credits nothing more
    assert Transaction.objects.filter(type=TransactionType.PURCHASE).count() == 1
    _clean()


@pytest.mark.django_db
def test_planted_credit_without_a_paid_payment_is_a_finding(start, user, capsys):
    from audit.models import AuditEvent

    purchase = start()  # never paid at the provider
    planted = _provider.Payment(
        id=purchase["provider_payment_id"], status="succeeded", amount=999, currency="usd",
        metadata={"purchase_id": str(purchase["id"])},
    )  # fmt: skip
    services.fulfil_purchase(payment=planted)
    with pytest.raises(CommandError) as raised:
        call_command("reconcile_payments", "--since", "3d")
    assert raised.value.returncode == 1
    assert "credited_but_not_paid" in capsys.readouterr().out
    event = AuditEvent.objects.filter(action="payments.reconciled").latest("id")
    assert event.metadata["findings"][0]["kind"] == "credited_but_not_paid"


@pytest.mark.django_db
def test_refund_never_clawed_back_is_a_finding(start, client, user, capsys):
    purchase = start()
    intent = pay(purchase["provider_payment_id"])
    deliver(client, event_body("payment_intent.succeeded", intent))
    refund(purchase["provider_payment_id"], 500)  # charge.refunded dropped
    with pytest.raises(CommandError):
        call_command("reconcile_payments", "--since", "3d")
    assert "refunded_but_not_clawed_back" in capsys.readouterr().out


@pytest.mark.django_db
def test_process_provider_events_retries_failed_processing(start, client, user, settings,
                                                           stripe_local):  # fmt: skip
    purchase = start()
    intent = pay(purchase["provider_payment_id"])
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    deliver(client, event_body("payment_intent.succeeded", intent))
    with pytest.raises(CommandError):
        call_command("process_provider_events")  # the provider is still down
    settings.STRIPE_API_BASE = stripe_local
    call_command("process_provider_events")
    assert Wallet.objects.get(user=user).balance == 1000
