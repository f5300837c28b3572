"""The admin's Refund flow: a dedicated view on a spend's page, calling services.refund
with actor=request.user. Every refusal is a form error (never a 500) and moves nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from jobs.models import Job, JobStatus
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import (
    logged_in,
    messages_of,
    staff_in_group,
    staff_with_permissions,
)
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def support(db):
    return staff_in_group("support-agent", "support")


@pytest.fixture
def spend(user, fund, job_type):
    """`user` holds 200 points, then spends 50 on a fortune: balance 150."""
    fund(user, 200)
    return services.spend(user=user, job_type=job_type).transaction


def refund_url(txn: Transaction) -> str:
    return reverse("admin:wallet_transaction_refund", args=[txn.pk])


def change_url(txn: Transaction) -> str:
    return reverse("admin:wallet_transaction_change", args=[txn.pk])


def post_refund(client, txn, amount="", reason="Customer complaint #42", reference=None):
    data = {"amount": amount, "reason": reason}
    data["reference"] = (
        reference or client.get(refund_url(txn)).context["form"]["reference"].value()
    )
    return client.post(refund_url(txn), data, follow=True)


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


# --- the button and the page ---------------------------------------------------------


def test_spend_page_shows_refund_button_to_support(support, spend):
    response = logged_in(support).get(change_url(spend))

    assert response.status_code == 200
    assert refund_url(spend) in response.content.decode()


def test_refund_page_shows_what_remains_refundable(support, spend, user):
    services.refund(spend_txn=spend, amount=20, reason="partial", actor=support)

    response = logged_in(support).get(refund_url(spend))

    assert response.status_code == 200
    assert response.context["remaining"] == 30
    page = response.content.decode()
    assert 'id="refundable-remaining">30 points' in page
    assert 'id="wallet-balance">170 points' in page
    assert 'value="Refund"' in page


# --- success ----------------------------------------------------------------------------


def test_full_refund_when_amount_is_left_empty(support, spend, user):
    response = post_refund(logged_in(support), spend, amount="")

    assert response.redirect_chain[-1][0] == change_url(spend)
    refund = Transaction.objects.get(type=TransactionType.REFUND)
    assert (refund.amount, refund.related_transaction, refund.actor) == (50, spend, support)
    assert refund.description == "Customer complaint #42"
    assert balance_of(user) == 200
    assert Job.objects.get(transaction=spend).status == JobStatus.REFUNDED
    assert messages_of(response) == [
        f"Refunded 50 points of spend #{spend.pk} to {user} (transaction #{refund.pk}). "
        "New balance: 200 points."
    ]
    event = AuditEvent.objects.get(transaction=refund)
    assert (event.action, event.actor) == ("wallet.refund", support)
    # Fully refunded: the button is gone.
    assert refund_url(spend) not in response.content.decode()
    assert_ledger_consistent()


def test_partial_refunds_until_nothing_remains(support, spend, user):
    client = logged_in(support)

    first = post_refund(client, spend, amount="20")
    second = post_refund(client, spend, amount="30")

    assert "New balance: 170 points." in messages_of(first)[0]
    assert "New balance: 200 points." in messages_of(second)[0]
    assert sorted(spend.refunds.values_list("amount", flat=True)) == [20, 30]
    assert services.refundable_remaining(spend) == 0
    assert_ledger_consistent()


def test_double_submitted_form_refunds_once(support, spend, user):
    client = logged_in(support)
    reference = client.get(refund_url(spend)).context["form"]["reference"].value()

    first = post_refund(client, spend, amount="10", reference=reference)
    again = post_refund(client, spend, amount="10", reference=reference)

    assert spend.refunds.count() == 1
    assert balance_of(user) == 160
    assert "New balance: 160 points." in messages_of(first)[0]
    assert messages_of(again)[0].startswith("This refund was already recorded.")


def test_finance_staff_can_refund_too(spend, user):
    finance = staff_in_group("finance-agent", "finance")

    post_refund(logged_in(finance), spend, amount="5")

    assert balance_of(user) == 155


# --- refusals: a form error, and nothing changes ------------------------------------------


@pytest.mark.parametrize(
    ("amount", "reason", "field", "fragment"),
    [
        ("51", "too much", "amount", "refund_exceeds_original"),
        ("", "   ", "reason", "A reason is required."),
        ("", "", "reason", "A reason is required."),
        ("10.5", "decimal", "amount", "whole number"),
        ("10.0", "decimal zero", "amount", "whole number"),
        ("1e1", "exponent", "amount", "whole number"),
        ("ten", "word", "amount", "whole number"),
        ("1,000", "separator", "amount", "whole number"),
        ("0", "zero", "amount", "at least 1"),
        ("-5", "negative", "amount", "at least 1"),
        ("9" * 30, "huge", "amount", "amount_too_large"),
    ],
)
def test_refused_refund_is_a_form_error_and_changes_nothing(
    support, spend, amount, reason, field, fragment
):
    before = ledger_snapshot()

    response = post_refund(logged_in(support), spend, amount=amount, reason=reason)

    assert response.status_code == 200
    assert any(fragment in error for error in response.context["form"].errors[field])
    assert ledger_snapshot() == before


def test_over_refund_after_a_partial_refund_is_refused(support, spend):
    client = logged_in(support)
    post_refund(client, spend, amount="40")
    before = ledger_snapshot()

    response = post_refund(client, spend, amount="11")

    errors = response.context["form"].errors["amount"]
    assert errors == [
        "The refund is larger than what remains refundable of the spend. (refund_exceeds_original)"
    ]
    assert ledger_snapshot() == before


def test_refund_of_a_fully_refunded_spend_is_refused(support, spend):
    services.refund(spend_txn=spend, reason="all of it", actor=support)
    before = ledger_snapshot()

    response = post_refund(logged_in(support), spend, amount="")

    assert "refund_exceeds_original" in response.context["form"].errors["amount"][0]
    assert "nothing remains refundable" in response.content.decode()
    assert ledger_snapshot() == before


def test_refund_of_a_deposit_is_refused_as_not_refundable(support, user, fund):
    fund(user, 100)
    deposit = Transaction.objects.get(type=TransactionType.DEPOSIT, user=user)
    client = logged_in(support)
    assert refund_url(deposit) not in client.get(change_url(deposit)).content.decode()
    page = client.get(refund_url(deposit))
    assert "only successful spends can be refunded" in page.content.decode()
    assert 'value="Refund"' not in page.content.decode()
    before = ledger_snapshot()

    response = post_refund(client, deposit, amount="10")

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "Only spends can be refunded. (not_refundable)"
    ]
    assert ledger_snapshot() == before


@pytest.mark.parametrize("who", ["viewer", "adjuster"])
def test_staff_without_refund_permission_get_403_and_no_button(who, spend):
    perms = ["wallet.view_transaction"] + (["wallet.adjust_points"] if who == "adjuster" else [])
    client = logged_in(staff_with_permissions(who, *perms))
    before = ledger_snapshot()

    page = client.get(change_url(spend))
    get = client.get(refund_url(spend))
    post = client.post(refund_url(spend), {"reason": "sneaky", "reference": "admin-x"})

    assert page.status_code == 200
    assert refund_url(spend) not in page.content.decode()
    assert (get.status_code, post.status_code) == (403, 403)
    assert ledger_snapshot() == before


def test_non_staff_user_is_sent_to_the_login_page(user, spend):
    before = ledger_snapshot()

    response = logged_in(user).post(refund_url(spend), {"reason": "me", "reference": "admin-x"})

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert ledger_snapshot() == before


def test_tampered_reference_is_a_form_error(support, spend):
    before = ledger_snapshot()

    response = post_refund(logged_in(support), spend, amount="5", reference="not-from-the-form")

    assert response.context["form"].errors["reference"]
    assert ledger_snapshot() == before


def test_unknown_transaction_is_404(support):
    response = logged_in(support).get(reverse("admin:wallet_transaction_refund", args=[999999]))

    assert response.status_code == 404
