"""Staff and payment endpoints over HTTP: deposit, adjust, refund, the wallets list.
Permission refusals on money endpoints are audited and reveal nothing about objects."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from jobs.models import Job
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.tests.api_helpers import (
    BAD_AMOUNT_IDS,
    BAD_AMOUNT_LITERALS,
    body_with,
    error_of,
    post_raw,
    staff_in,
)
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

DEPOSIT = "/api/v1/wallet/deposit"
WALLETS = "/api/v1/admin/wallets"


def points_url(user_id) -> str:
    return f"/api/v1/admin/users/{user_id}/points"


def refund_url(txn_id) -> str:
    return f"/api/v1/admin/transactions/{txn_id}/refund"


@pytest.fixture
def finance(db):
    return staff_in("finance", "fin")


@pytest.fixture
def support(db):
    return staff_in("support", "sup")


@pytest.fixture
def as_finance(finance, client_for):
    return client_for(finance)


@pytest.fixture
def as_support(support, client_for):
    return client_for(support)


@pytest.fixture
def as_payments(payer, client_for):
    return client_for(payer)


@pytest.fixture
def as_user(user, client_for):
    return client_for(user)


@pytest.fixture
def spent(user, fund, job_type) -> Transaction:
    fund(user, 200)
    return services.spend(user=user, job_type="fortune").transaction


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


def denied_events() -> list[dict]:
    return list(
        AuditEvent.objects.filter(action="api.permission_denied").values_list(
            "actor_id", "metadata"
        )
    )


# --- deposit ------------------------------------------------------------------------


def test_payment_account_deposits_with_the_payment_reference(user, payer, as_payments):
    response = as_payments.post(
        DEPOSIT, {"user_id": user.pk, "amount": 300, "reference_id": "pay-1"}, format="json"
    )

    assert response.status_code == 201
    txn = response.json()["transaction"]
    assert (txn["type"], txn["amount"], txn["reference_id"]) == ("deposit", 300, "pay-1")
    assert txn["user_id"] == user.pk
    assert Transaction.objects.get(pk=txn["id"]).actor == payer
    assert balance_of(user) == 300
    assert_ledger_consistent()


def test_deposit_takes_the_reference_from_the_idempotency_key_header(user, as_payments):
    response = as_payments.post(
        DEPOSIT, {"user_id": user.pk, "amount": 5}, format="json", HTTP_IDEMPOTENCY_KEY="pay-h"
    )

    assert response.status_code == 201
    assert response.json()["transaction"]["reference_id"] == "pay-h"


def test_deposit_without_any_reference_is_400(user, as_payments):
    before = ledger_snapshot()

    response = as_payments.post(DEPOSIT, {"user_id": user.pk, "amount": 5}, format="json")

    assert error_of(response) == (400, "validation_error")
    assert response.json()["error"]["details"]["fields"] == {
        "reference_id": ["reference_id is required."]
    }
    assert ledger_snapshot() == before


@pytest.mark.parametrize(("literal", "code"), BAD_AMOUNT_LITERALS, ids=BAD_AMOUNT_IDS)
def test_deposit_refuses_every_bad_amount_and_changes_nothing(user, as_payments, literal, code):
    before = ledger_snapshot()

    response = post_raw(
        as_payments, DEPOSIT, body_with({"user_id": user.pk, "reference_id": "p"}, amount=literal)
    )

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "user_id, code",
    [
        ('"1"', "validation_error"),
        ("0", "validation_error"),
        ("-3", "validation_error"),
        ("1.0", "validation_error"),
        ("true", "validation_error"),
        ("null", "validation_error"),
        ("1e30", "validation_error"),
        # A well-formed id of nobody: the same business refusal as a transfer's.
        ("987654321", "unknown_recipient"),
    ],
)
def test_deposit_refuses_bad_or_unknown_users(as_payments, user_id, code):
    before = ledger_snapshot()

    response = post_raw(
        as_payments, DEPOSIT, body_with({"amount": 5, "reference_id": "p"}, user_id=user_id)
    )

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


@pytest.mark.parametrize("who", ["user", "support"])
def test_deposit_without_the_permission_is_403_and_audited(user, support, client_for, who):
    actor = {"user": user, "support": support}[who]
    before = ledger_snapshot()

    response = client_for(actor).post(
        DEPOSIT, {"user_id": actor.pk, "amount": 1000, "reference_id": "mine"}, format="json"
    )

    assert error_of(response) == (403, "permission_denied")
    after = ledger_snapshot()
    assert {k: v for k, v in after.items() if k != "audit"} == {
        k: v for k, v in before.items() if k != "audit"
    }
    assert after["audit"] == before["audit"] + 1
    assert denied_events() == [
        (actor.pk, {"path": DEPOSIT, "method": "POST"}),
    ]


# --- adjust -------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "expected"), [(25, 125), (-40, 60)])
def test_finance_adjusts_points_with_a_reason(user, fund, finance, as_finance, amount, expected):
    fund(user, 100)

    response = as_finance.put(
        points_url(user.pk), {"amount": amount, "reason": "goodwill"}, format="json"
    )

    assert response.status_code == 201
    txn = response.json()["transaction"]
    assert (txn["type"], txn["amount"], txn["description"]) == ("adjustment", amount, "goodwill")
    assert balance_of(user) == expected
    assert_ledger_consistent()


@pytest.mark.parametrize(
    ("literal", "code"),
    [(lit, code) for lit, code in BAD_AMOUNT_LITERALS if lit != "-5"]
    + [("-1000001", "amount_too_large"), ("-99999999999999999999999", "amount_too_large")],
)
def test_adjust_refuses_bad_amounts_and_changes_nothing(user, fund, as_finance, literal, code):
    fund(user, 100)
    before = ledger_snapshot()

    response = post_raw(
        as_finance, points_url(user.pk), body_with({"reason": "x"}, amount=literal), method="put"
    )

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 5},
        {"amount": 5, "reason": ""},
        {"amount": 5, "reason": "   "},
        {"amount": 5, "reason": 7},
        {"amount": 5, "reason": "x" * 501},
    ],
)
def test_adjust_needs_a_written_reason(user, as_finance, body):
    before = ledger_snapshot()

    assert error_of(as_finance.put(points_url(user.pk), body, format="json")) == (
        400,
        "validation_error",
    )
    assert ledger_snapshot() == before


def test_adjust_below_zero_is_402(user, fund, as_finance):
    fund(user, 10)
    before = ledger_snapshot()

    response = as_finance.put(points_url(user.pk), {"amount": -11, "reason": "x"}, format="json")

    assert error_of(response) == (402, "insufficient_balance")
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]


@pytest.mark.parametrize("user_id", ["987654321", "99999999999999999999999", "abc"])
def test_adjust_of_an_unknown_user_is_404(as_finance, user_id):
    before = ledger_snapshot()

    response = as_finance.put(points_url(user_id), {"amount": 5, "reason": "x"}, format="json")

    assert error_of(response) == (404, "not_found")
    assert ledger_snapshot() == before


@pytest.mark.parametrize("who", ["user", "support"])
def test_adjust_without_the_permission_is_403_for_existing_and_missing_users(
    user, support, client_for, who
):
    actor = {"user": user, "support": support}[who]
    client = client_for(actor)
    before = ledger_snapshot()

    existing = client.put(points_url(actor.pk), {"amount": 500, "reason": "me"}, format="json")
    missing = client.put(points_url(987654321), {"amount": 500, "reason": "me"}, format="json")

    assert error_of(existing) == (403, "permission_denied")
    assert error_of(missing) == (403, "permission_denied")
    assert existing.json() == missing.json()
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert len(denied_events()) == 2


def test_adjust_needs_authentication(api_client, user):
    assert error_of(
        api_client.put(points_url(user.pk), {"amount": 5, "reason": "x"}, format="json")
    ) == (401, "not_authenticated")
    assert denied_events() == []


# --- refund -------------------------------------------------------------------------


def test_support_refunds_a_spend_fully(user, spent, as_support, support):
    response = as_support.post(refund_url(spent.pk), {"reason": "reading was off"}, format="json")

    assert response.status_code == 201
    txn = response.json()["transaction"]
    assert (txn["type"], txn["amount"], txn["related_transaction_id"]) == ("refund", 50, spent.pk)
    assert balance_of(user) == 200
    assert Job.objects.get(transaction=spent).status == "refunded"
    assert_ledger_consistent()


def test_support_refunds_a_spend_partly_then_not_beyond_it(user, spent, as_support):
    first = as_support.post(refund_url(spent.pk), {"amount": 20, "reason": "x"}, format="json")
    assert first.status_code == 201
    before = ledger_snapshot()

    too_much = as_support.post(refund_url(spent.pk), {"amount": 31, "reason": "y"}, format="json")

    assert error_of(too_much) == (400, "refund_exceeds_original")
    assert too_much.json()["error"]["details"]["refundable"] == 30
    assert ledger_snapshot() == before


def test_refunding_a_deposit_is_not_refundable(user, fund, as_support):
    fund(user, 10)
    deposit = Transaction.objects.get(user=user)
    before = ledger_snapshot()

    response = as_support.post(refund_url(deposit.pk), {"reason": "x"}, format="json")

    assert error_of(response) == (400, "not_refundable")
    assert ledger_snapshot() == before


@pytest.mark.parametrize(("literal", "code"), BAD_AMOUNT_LITERALS, ids=BAD_AMOUNT_IDS)
def test_refund_refuses_every_bad_amount(spent, as_support, literal, code):
    before = ledger_snapshot()

    response = post_raw(
        as_support, refund_url(spent.pk), body_with({"reason": "x"}, amount=literal)
    )

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


def test_refund_needs_a_reason(spent, as_support):
    before = ledger_snapshot()

    assert error_of(as_support.post(refund_url(spent.pk), {}, format="json")) == (
        400,
        "validation_error",
    )
    assert ledger_snapshot() == before


@pytest.mark.parametrize("txn_id", ["987654321", "99999999999999999999999"])
def test_refund_of_an_unknown_transaction_is_404(as_support, txn_id):
    response = as_support.post(refund_url(txn_id), {"reason": "x"}, format="json")

    assert error_of(response) == (404, "not_found")


def test_refund_by_a_normal_user_is_403_even_of_their_own_spend_and_audited(user, spent, as_user):
    before = ledger_snapshot()

    own = as_user.post(refund_url(spent.pk), {"reason": "I want it back"}, format="json")
    missing = as_user.post(refund_url(987654321), {"reason": "x"}, format="json")

    assert error_of(own) == (403, "permission_denied")
    assert own.json() == missing.json()
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert [actor for actor, _ in denied_events()] == [user.pk, user.pk]


# --- wallets list -------------------------------------------------------------------


def test_support_lists_wallets_ordered_by_balance(user, other_user, fund, as_support):
    fund(user, 10)
    fund(other_user, 30)

    response = as_support.get(WALLETS, {"ordering": "-balance"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    balances = [row["balance"] for row in body["results"]]
    assert balances == sorted(balances, reverse=True)
    ascending = [
        row["balance"] for row in as_support.get(WALLETS, {"ordering": "balance"}).json()["results"]
    ]
    assert ascending == sorted(ascending)


def test_support_filters_wallets_by_user(user, other_user, fund, as_support):
    fund(user, 10)
    fund(other_user, 30)

    by_id = as_support.get(WALLETS, {"user_id": other_user.pk}).json()["results"]
    by_name = as_support.get(WALLETS, {"username": user.username.upper()}).json()["results"]

    assert [(row["user_id"], row["balance"]) for row in by_id] == [(other_user.pk, 30)]
    assert [row["user_id"] for row in by_name] == [user.pk]


@pytest.mark.parametrize("params", [{"user_id": "abc"}, {"user_id": "0"}, {"ordering": "password"}])
def test_wallet_list_refuses_bad_filters(as_support, params):
    assert error_of(as_support.get(WALLETS, params)) == (400, "validation_error")


def test_wallet_list_needs_the_view_permission(as_user, api_client):
    assert error_of(as_user.get(WALLETS)) == (403, "permission_denied")
    assert error_of(api_client.get(WALLETS)) == (401, "not_authenticated")
