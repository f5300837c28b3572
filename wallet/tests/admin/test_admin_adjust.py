"""The admin's Adjust points flow: a form, then a confirmation page showing the new
balance (and whether a second person must approve), whose button calls services.adjust
with actor=request.user; only staff holding wallet.adjust_points."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import (
    confirm_flow,
    logged_in,
    messages_of,
    staff_in_group,
    staff_with_permissions,
    start_flow,
    token_of,
)
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def finance(db):
    return staff_in_group("finance-agent", "finance")


@pytest.fixture
def wallet(user, fund) -> Wallet:
    fund(user, 100)
    return Wallet.objects.get(user=user)


def adjust_url(wallet: Wallet) -> str:
    return reverse("admin:wallet_wallet_adjust", args=[wallet.pk])


def change_url(wallet: Wallet) -> str:
    return reverse("admin:wallet_wallet_change", args=[wallet.pk])


def confirm_url(wallet: Wallet) -> str:
    return reverse("admin:wallet_wallet_adjust_confirm", args=[wallet.pk])


def step_one(client, wallet, amount, reason="Goodwill for outage 2026-11"):
    return start_flow(client, adjust_url(wallet), {"amount": amount, "reason": reason})


def post_adjust(client, wallet, amount, reason="Goodwill for outage 2026-11"):
    """Form, then confirmation; a form error is returned as the form page."""
    started = step_one(client, wallet, amount, reason)
    if started.status_code != 302:
        return started
    return confirm_flow(client, started["Location"])


def test_wallet_page_shows_adjust_button_to_finance_only(finance, wallet):
    support = staff_in_group("support-agent", "support")

    finance_page = logged_in(finance).get(change_url(wallet)).content.decode()
    support_page = logged_in(support).get(change_url(wallet)).content.decode()

    assert adjust_url(wallet) in finance_page
    assert adjust_url(wallet) not in support_page


def test_adjust_page_shows_current_balance(finance, wallet):
    response = logged_in(finance).get(adjust_url(wallet))

    assert response.status_code == 200
    assert 'id="wallet-balance">100 points' in response.content.decode()


@pytest.mark.parametrize(("amount", "expected"), [("150", 250), ("+5", 105), ("-100", 0)])
def test_adjustment_moves_points_and_reports_new_balance(finance, wallet, user, amount, expected):
    response = post_adjust(logged_in(finance), wallet, amount)

    assert response.redirect_chain[-1][0] == change_url(wallet)
    row = Transaction.objects.get(type=TransactionType.ADJUSTMENT)
    assert (row.amount, row.actor, row.description) == (
        int(amount),
        finance,
        "Goodwill for outage 2026-11",
    )
    assert Wallet.objects.get(pk=wallet.pk).balance == expected
    assert messages_of(response) == [
        f"Adjusted the wallet of {user} by {int(amount):+d} points (transaction #{row.pk}). "
        f"New balance: {expected} points."
    ]
    event = AuditEvent.objects.get(transaction=row)
    assert (event.action, event.actor, event.metadata["reason"]) == (
        "wallet.adjustment",
        finance,
        "Goodwill for outage 2026-11",
    )
    assert_ledger_consistent()


def test_an_adjustment_that_will_be_refused_offers_no_button(finance, wallet):
    client = logged_in(finance)
    started = step_one(client, wallet, "-101")
    page = client.get(started["Location"]).content.decode()
    assert "This adjustment cannot be booked: the wallet holds 100 points" in page
    assert 'id="confirm-balance" class="figure">100 points now; -101 would go below zero' in page
    assert 'id="confirm-button"' not in page
    assert "once approved" not in page and "→ -1" not in page
    assert 'id="start-over"' in page  # the way back: change the amount


def test_a_large_refused_adjustment_offers_no_approval_request(finance, wallet):
    started = step_one(logged_in(finance), wallet, "-74946")
    page = logged_in(finance).get(started["Location"]).content.decode()
    assert "Request approval" not in page and "once approved" not in page
    assert "cannot be booked" in page


def test_negative_result_is_refused_with_the_contracts_message(finance, wallet):
    before = ledger_snapshot()

    # Posting the confirmation anyway (no button is shown) is refused by the service.
    response = post_adjust(logged_in(finance), wallet, "-101", reason="Claw back ticket 77")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Not enough points. The wallet holds 100 points; this would take 101." in html
    assert "(insufficient_balance)" not in html
    after = ledger_snapshot()
    # No money moved. The contract audits refused attempts that matter (insufficient
    # balance), so exactly one rejection event is the only difference.
    assert {**after, "audit": before["audit"]} == before
    assert after["audit"] == before["audit"] + 1
    rejected = AuditEvent.objects.get(action="wallet.adjustment.rejected")
    assert (rejected.actor, rejected.metadata["code"]) == (finance, "insufficient_balance")
    assert rejected.metadata["adjustment_reason"] == "Claw back ticket 77"
    assert_ledger_consistent()


def test_a_recent_identical_adjustment_must_be_acknowledged(finance, wallet):
    client = logged_in(finance)
    assert post_adjust(client, wallet, "25").status_code == 200
    started = step_one(client, wallet, "25")
    page = client.get(started["Location"]).content.decode()
    assert "The same adjustment (+25 points) was already made or asked for" in page
    assert "I have seen the recent adjustment above" in page
    refused = confirm_flow(client, started["Location"])
    assert "Tick the box" in refused.content.decode()
    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 1
    booked = confirm_flow(client, started["Location"], acknowledge=True)
    assert "New balance: 150 points" in booked.content.decode()
    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 2
    # Another amount is not "identical": no warning.
    other = step_one(client, wallet, "26")
    assert "The same adjustment" not in client.get(other["Location"]).content.decode()
    assert_ledger_consistent()


def test_confirmation_shows_the_new_balance_before_anything_is_booked(finance, wallet):
    client = logged_in(finance)
    before = ledger_snapshot()

    started = step_one(client, wallet, "1500")
    page = client.get(started["Location"]).content.decode()

    assert 'id="confirm-amount" class="figure">+1,500 points' in page
    assert 'id="confirm-balance" class="figure">100 → 1,600 points' in page
    assert 'value="Confirm: adjust by +1,500 points"' in page
    assert ledger_snapshot() == before


def test_a_large_adjustment_becomes_an_approval_request(finance, wallet, user):
    client = logged_in(finance)
    started = step_one(client, wallet, "500000")
    page = client.get(started["Location"]).content.decode()

    response = confirm_flow(client, started["Location"])

    assert "This amount needs a second person" in page
    assert 'value="Request approval of +500,000 points"' in page
    approval = ApprovalRequest.objects.get()
    assert (approval.amount, approval.requested_by, approval.status) == (
        500_000,
        finance,
        "pending",
    )
    assert response.redirect_chain[-1][0] == reverse(
        "admin:wallet_approvalrequest_change", args=[approval.pk]
    )
    html = response.content.decode()
    assert f"Approval request #{approval.pk} for +500,000 points created" in html
    assert "you cannot decide it yourself" in html
    assert "approve-link" not in html  # never on one's own request
    assert Wallet.objects.get(pk=wallet.pk).balance == 100
    assert not Transaction.objects.filter(type=TransactionType.ADJUSTMENT).exists()


def test_a_balance_change_since_the_form_makes_the_confirmation_stale(finance, wallet, fund, user):
    client = logged_in(finance)
    started = step_one(client, wallet, "-50")
    fund(user, 7)
    before = ledger_snapshot()

    response = client.post(confirm_url(wallet), {"token": token_of(started["Location"])})

    assert "changed from 100 to 107 points. Nothing was booked." in response.content.decode()
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    ("amount", "reason", "field", "fragment"),
    [
        ("10", "", "reason", "A reason is required."),
        ("10", "  \n ", "reason", "A reason is required."),
        ("", "no amount", "amount", "This field is required."),
        ("0", "zero", "amount", "must not be zero"),
        ("-0", "negative zero", "amount", "must not be zero"),
        ("1.5", "decimal", "amount", "whole number"),
        ("-10.0", "decimal zero", "amount", "whole number"),
        ("2e3", "exponent", "amount", "whole number"),
        ("ten", "word", "amount", "whole number"),
        ("1000001", "too large", "amount", "between -1,000,000 and 1,000,000 points"),
        ("10", "x" * 501, "reason", "at most 500 characters"),
    ],
)
def test_invalid_adjustment_is_a_form_error_and_changes_nothing(
    finance, wallet, amount, reason, field, fragment
):
    before = ledger_snapshot()

    response = post_adjust(logged_in(finance), wallet, amount, reason=reason)

    assert response.status_code == 200
    assert any(fragment in error for error in response.context["form"].errors[field])
    assert ledger_snapshot() == before


def test_support_cannot_adjust(wallet):
    client = logged_in(staff_in_group("support-agent", "support"))
    before = ledger_snapshot()

    get = client.get(adjust_url(wallet))
    post = client.post(adjust_url(wallet), {"amount": "50", "reason": "x"})
    confirm = client.post(confirm_url(wallet), {"token": "x"})

    assert (get.status_code, post.status_code, confirm.status_code) == (403, 403, 403)
    assert "wallet.adjust_points" in get.content.decode()
    after = ledger_snapshot()
    assert {**after, "audit": 0} == {**before, "audit": 0}
    # Each refusal is audited, naming the permission.
    denied = AuditEvent.objects.filter(action="admin.permission_denied")
    assert after["audit"] - before["audit"] == denied.count() == 3
    assert {event.metadata["permission"] for event in denied} == {"wallet.adjust_points"}


def test_adjust_permission_alone_is_enough(wallet):
    """The flow checks wallet.adjust_points, not a group name."""
    client = logged_in(staff_with_permissions("solo", "wallet.adjust_points", "wallet.view_wallet"))

    post_adjust(client, wallet, "7")

    assert Wallet.objects.get(pk=wallet.pk).balance == 107


def test_resubmitted_confirmation_moves_points_once(finance, wallet):
    client = logged_in(finance)
    started = step_one(client, wallet, "30")
    confirm_flow(client, started["Location"])

    back = client.get(started["Location"])
    again = client.post(confirm_url(wallet), {"token": token_of(started["Location"])})

    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 1
    assert Wallet.objects.get(pk=wallet.pk).balance == 130
    for response in (back, again):
        assert "This confirmation was already used" in response.content.decode()
