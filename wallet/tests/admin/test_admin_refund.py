"""The admin's Refund flow: step one (an explicit choice and a reason) moves nothing
and leads to a confirmation page showing exactly what will happen; only its button
calls services.refund, with actor=request.user and the state the page showed. Every
refusal is shown on the page (never a 500) and moves nothing."""

from __future__ import annotations

import pytest
from django.core import signing
from django.urls import reverse

from audit.models import AuditEvent
from jobs.models import Job, JobStatus
from wallet import services
from wallet.admin import confirmations
from wallet.models import Transaction, TransactionType, Wallet
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
def support(db):
    return staff_in_group("support-agent", "support")


@pytest.fixture
def spend(user, fund, job_type):
    """`user` holds 200 points, then spends 50 on a fortune: balance 150."""
    fund(user, 200)
    return services.spend(user=user, job_type=job_type).transaction


def refund_url(txn: Transaction) -> str:
    return reverse("admin:wallet_transaction_refund", args=[txn.pk])


def confirm_url(txn: Transaction) -> str:
    return reverse("admin:wallet_transaction_refund_confirm", args=[txn.pk])


def change_url(txn: Transaction) -> str:
    return reverse("admin:wallet_transaction_change", args=[txn.pk])


def step_one(client, txn, mode="partial", amount="", reason="Customer complaint #42"):
    data = {"mode": mode, "amount": amount, "reason": reason}
    return start_flow(client, refund_url(txn), {k: v for k, v in data.items() if v is not None})


def refund_in_admin(client, txn, mode="partial", amount="", acknowledge=False, **kwargs):
    started = step_one(client, txn, mode, amount, **kwargs)
    assert started.status_code == 302, started.context["form"].errors if started.context else ""
    return confirm_flow(client, started["Location"], acknowledge=acknowledge)


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


# --- the button and the form --------------------------------------------------------------


def test_spend_page_shows_refund_button_to_support(support, spend):
    response = logged_in(support).get(change_url(spend))

    assert response.status_code == 200
    assert refund_url(spend) in response.content.decode()


def test_refund_form_shows_what_remains_and_an_explicit_choice(support, spend):
    services.refund(spend_txn=spend, amount=20, reason="partial", actor=support)

    response = logged_in(support).get(refund_url(spend))

    assert response.status_code == 200
    assert response.context["remaining"] == 30
    page = response.content.decode()
    assert 'id="refundable-remaining">30 points' in page
    assert 'id="wallet-balance">170 points' in page
    assert "All that remains (30 points)" in page
    assert "Part of it" in page
    assert 'value="Continue to confirmation"' in page
    assert "already refunded in the last 60 minutes" in page  # the 20 just now
    assert "no-store" in response["Cache-Control"]


def test_step_one_moves_nothing_and_the_choice_is_required(support, spend):
    client = logged_in(support)
    before = ledger_snapshot()

    no_choice = step_one(client, spend, mode=None, amount="")
    partial_blank = step_one(client, spend, mode="partial", amount="")
    all_with_amount = step_one(client, spend, mode="all", amount="10")
    started = step_one(client, spend, mode="partial", amount="10")

    assert "Choose whether to refund all" in no_choice.context["form"].errors["mode"][0]
    assert partial_blank.context["form"].errors["amount"] == [
        "Enter the amount of the partial refund."
    ]
    assert "leave the amount empty" in all_with_amount.context["form"].errors["amount"][0]
    assert started.status_code == 302
    assert started["Location"].startswith(confirm_url(spend) + "?token=")
    assert ledger_snapshot() == before


def test_confirmation_page_shows_exactly_what_will_happen(support, spend):
    client = logged_in(support)
    started = step_one(client, spend, mode="partial", amount="10")

    page = client.get(started["Location"])

    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="confirm-amount" class="figure">+10 points (part of what remains)' in html
    assert 'id="confirm-balance" class="figure">150 → 160 points' in html
    assert 'id="confirm-remaining" class="figure">50 → 40 points' in html
    assert 'value="Confirm: refund 10 points"' in html
    assert 'id="id_acknowledge"' not in html  # no recent refund: nothing to acknowledge
    assert "no-store" in page["Cache-Control"]


# --- success ----------------------------------------------------------------------------


def test_refund_all_that_remains_is_an_explicit_number(support, spend, user):
    response = refund_in_admin(logged_in(support), spend, mode="all")

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

    first = refund_in_admin(client, spend, amount="20")
    second = refund_in_admin(client, spend, amount="30", acknowledge=True)

    assert "New balance: 170 points." in messages_of(first)[0]
    assert "New balance: 200 points." in messages_of(second)[0]
    assert sorted(spend.refunds.values_list("amount", flat=True)) == [20, 30]
    assert services.refundable_remaining(spend) == 0
    assert_ledger_consistent()


def test_a_second_refund_within_the_hour_needs_an_explicit_acknowledgement(support, spend):
    client = logged_in(support)
    refund_in_admin(client, spend, amount="10")
    started = step_one(client, spend, amount="10")
    page = client.get(started["Location"]).content.decode()
    before = ledger_snapshot()

    unticked = client.post(confirm_url(spend), {"token": token_of(started["Location"])})

    assert "This spend was already refunded in the last 60 minutes" in page
    assert "I have seen the recent refund above" in page
    assert "Tick the box" in unticked.content.decode()
    assert ledger_snapshot() == before
    confirm_flow(client, started["Location"], acknowledge=True)
    assert sorted(spend.refunds.values_list("amount", flat=True)) == [10, 10]


def test_the_refund_appears_in_recent_actions(support, spend):
    client = logged_in(support)
    refund_in_admin(client, spend, amount="10")
    refund = Transaction.objects.get(type=TransactionType.REFUND)

    index = client.get(reverse("admin:index")).content.decode()

    assert f"Refunded 10 points of spend #{spend.pk}" in index
    assert reverse("admin:wallet_transaction_change", args=[refund.pk]) in index


def test_finance_staff_can_refund_too(spend, user):
    finance = staff_in_group("finance-agent", "finance")

    refund_in_admin(logged_in(finance), spend, amount="5")

    assert balance_of(user) == 155


# --- Back + resubmit, stale and forged confirmations --------------------------------------


def test_back_to_a_used_confirmation_says_it_is_booked_and_resubmitting_replays(
    support, spend, user
):
    client = logged_in(support)
    started = step_one(client, spend, amount="10")
    location = started["Location"]
    confirm_flow(client, location)

    back = client.get(location)  # Back: the browser asks the server again (no-store)
    resubmit = client.post(confirm_url(spend), {"token": token_of(location)}, follow=True)

    assert "This confirmation was already used" in back.content.decode()
    assert "confirm-button" not in back.content.decode()
    assert "This confirmation was already used" in resubmit.content.decode()
    assert spend.refunds.count() == 1
    assert balance_of(user) == 160
    assert_ledger_consistent()


def test_a_confirmation_whose_state_moved_on_is_refused_as_stale(support, spend, user):
    client = logged_in(support)
    started = step_one(client, spend, mode="all")
    services.refund(spend_txn=spend, amount=5, reason="meanwhile", actor=support)
    before = ledger_snapshot()

    page = client.get(started["Location"])
    posted = client.post(confirm_url(spend), {"token": token_of(started["Location"])})

    for response in (page, posted):
        html = response.content.decode()
        assert "changed from 50 to 45 points. Nothing was booked." in html
        assert "confirm-button" not in html
    assert ledger_snapshot() == before


def test_the_service_refuses_a_stale_confirmation_under_the_lock(support, spend):
    """The page's check and the booking are separate moments; the service closes the gap."""
    from divine_whispers.errors import StaleConfirmation

    services.refund(spend_txn=spend, amount=5, reason="meanwhile", actor=support)
    before = ledger_snapshot()

    with pytest.raises(StaleConfirmation):
        services.refund(
            spend_txn=spend, amount=45, reason="x", actor=support, expected_remaining=50
        )

    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "token",
    ["", "garbage", signing.dumps({"kind": "refund", "amount": 50}, salt="other")],
)
def test_forged_or_broken_tokens_book_nothing(support, spend, token):
    before = ledger_snapshot()

    response = logged_in(support).post(confirm_url(spend), {"token": token})

    assert response.status_code == 200
    assert "Nothing was booked" in response.content.decode() or "incomplete" in (
        response.content.decode()
    )
    assert ledger_snapshot() == before


def test_a_token_is_bound_to_its_staff_member_and_its_spend(support, spend, user, job_type):
    other_spend = services.spend(user=user, job_type=job_type).transaction
    finance = staff_in_group("finance-agent", "finance")
    started = step_one(logged_in(support), spend, amount="10")
    token = token_of(started["Location"])
    before = ledger_snapshot()

    by_other_staff = logged_in(finance).post(confirm_url(spend), {"token": token})
    on_other_spend = logged_in(support).post(confirm_url(other_spend), {"token": token})

    for response in (by_other_staff, on_other_spend):
        assert "issued for another record or another staff member" in response.content.decode()
    assert ledger_snapshot() == before


def test_an_expired_confirmation_is_refused(support, spend, settings):
    started = step_one(logged_in(support), spend, amount="10")
    settings.ADMIN_CONFIRMATION_MAX_AGE_SECONDS = -1
    before = ledger_snapshot()

    response = logged_in(support).post(confirm_url(spend), {"token": token_of(started["Location"])})

    assert "This confirmation expired" in response.content.decode()
    assert ledger_snapshot() == before


def test_confirmation_tokens_cannot_be_read_for_another_kind(support, spend):
    token = confirmations.issue("adjust", object_id=spend.pk, staff_id=support.pk, amount=1)

    with pytest.raises(confirmations.ConfirmationError):
        confirmations.read(token, "refund", object_id=spend.pk, staff_id=support.pk)


# --- refusals: a form error, and nothing changes ------------------------------------------


@pytest.mark.parametrize(
    ("amount", "reason", "field", "fragment"),
    [
        ("51", "too much", "amount", "Only 50 points remain refundable"),
        ("5", "   ", "reason", "A reason is required."),
        ("5", "", "reason", "A reason is required."),
        ("10.5", "decimal", "amount", "whole number"),
        ("10.0", "decimal zero", "amount", "whole number"),
        ("1e1", "exponent", "amount", "whole number"),
        ("ten", "word", "amount", "whole number"),
        ("1,000", "separator", "amount", "whole number"),
        ("0", "zero", "amount", "at least 1"),
        ("-5", "negative", "amount", "at least 1"),
    ],
)
def test_refused_refund_is_a_form_error_and_changes_nothing(
    support, spend, amount, reason, field, fragment
):
    before = ledger_snapshot()

    response = step_one(logged_in(support), spend, amount=amount, reason=reason)

    assert response.status_code == 200
    assert any(fragment in error for error in response.context["form"].errors[field])
    assert ledger_snapshot() == before


def test_refund_of_a_fully_refunded_spend_offers_nothing(support, spend):
    services.refund(spend_txn=spend, reason="all of it", actor=support)
    before = ledger_snapshot()

    response = step_one(logged_in(support), spend, mode="all")

    assert response.status_code == 200
    assert "nothing remains refundable" in response.content.decode()
    assert "Continue to confirmation" not in response.content.decode()
    assert ledger_snapshot() == before


def test_refund_of_a_deposit_is_refused_as_not_refundable(support, user, fund):
    fund(user, 100)
    deposit = Transaction.objects.get(type=TransactionType.DEPOSIT, user=user)
    client = logged_in(support)
    assert refund_url(deposit) not in client.get(change_url(deposit)).content.decode()
    before = ledger_snapshot()

    page = step_one(client, deposit, amount="10")

    assert "only successful spends can be refunded" in page.content.decode()
    assert "Continue to confirmation" not in page.content.decode()
    # A hand-made token for a deposit is refused by the service.
    token = confirmations.issue(
        "refund",
        object_id=deposit.pk,
        staff_id=support.pk,
        amount=10,
        mode="partial",
        reason="x",
        reference="admin-forged",
        remaining=0,
    )
    posted = client.post(confirm_url(deposit), {"token": token})
    assert "Error code: not_refundable" in posted.content.decode()
    assert ledger_snapshot() == before


@pytest.mark.parametrize("who", ["viewer", "adjuster"])
def test_staff_without_refund_permission_get_403_and_no_button(who, spend):
    perms = ["wallet.view_transaction"] + (["wallet.adjust_points"] if who == "adjuster" else [])
    client = logged_in(staff_with_permissions(who, *perms))
    before = ledger_snapshot()

    page = client.get(change_url(spend))
    get = client.get(refund_url(spend))
    post = client.post(refund_url(spend), {"mode": "all", "reason": "sneaky"})
    confirm = client.post(confirm_url(spend), {"token": "x"})

    assert page.status_code == 200
    assert refund_url(spend) not in page.content.decode()
    assert (get.status_code, post.status_code, confirm.status_code) == (403, 403, 403)
    assert "wallet.refund_transaction" in get.content.decode()
    assert ledger_snapshot()["transactions"] == before["transactions"]


def test_non_staff_user_is_sent_to_the_login_page(user, spend):
    before = ledger_snapshot()

    response = logged_in(user).post(refund_url(spend), {"mode": "all", "reason": "me"})

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
    assert ledger_snapshot() == before


def test_unknown_transaction_is_404(support):
    response = logged_in(support).get(reverse("admin:wallet_transaction_refund", args=[999999]))

    assert response.status_code == 404
