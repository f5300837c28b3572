"""The user's wallet over HTTP: balance, history, spend, transfer — each success, each
refusal with its contract code, and the ledger untouched by every refusal."""

from __future__ import annotations

import pytest
from django.test import override_settings

from audit.models import AuditEvent
from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.tests.api_helpers import (
    BAD_AMOUNT_IDS,
    BAD_AMOUNT_LITERALS,
    body_with,
    error_of,
    post_raw,
)
from wallet.tests.factories import UserFactory
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

BALANCE = "/api/v1/wallet/balance"
TRANSACTIONS = "/api/v1/wallet/transactions"
SPEND = "/api/v1/wallet/spend"
TRANSFER = "/api/v1/wallet/transfer"

TRANSACTION_KEYS = {
    "id",
    "user_id",
    "type",
    "amount",
    "status",
    "balance_after",
    "reference_id",
    "description",
    "related_transaction_id",
    "transfer_id",
    "job_id",
    "created_at",
}


@pytest.fixture
def alice(user, client_for):
    return client_for(user)


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


# --- balance ------------------------------------------------------------------------


def test_new_user_has_a_wallet_with_zero(user, alice):
    response = alice.get(BALANCE)

    assert response.status_code == 200
    assert response.json()["user_id"] == user.pk
    assert response.json()["balance"] == 0
    assert "updated_at" in response.json()
    assert response["X-Request-ID"]


def test_balance_shows_own_points_only(user, other_user, alice, fund):
    fund(user, 70)
    fund(other_user, 999)

    assert alice.get(BALANCE).json()["balance"] == 70


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", BALANCE),
        ("get", TRANSACTIONS),
        ("get", f"{TRANSACTIONS}/1"),
        ("post", SPEND),
        ("post", TRANSFER),
        ("post", "/api/v1/wallet/deposit"),
    ],
)
def test_wallet_endpoints_need_authentication(api_client, method, path):
    before = ledger_snapshot()
    response = getattr(api_client, method)(path, {"amount": 5}, format="json")

    assert error_of(response) == (401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert ledger_snapshot() == before


def test_a_wrong_token_is_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert error_of(api_client.get(BALANCE)) == (401, "not_authenticated")


def test_a_deactivated_users_token_is_401(user, alice):
    user.is_active = False
    user.save()

    assert error_of(alice.get(BALANCE)) == (401, "not_authenticated")


# --- history ------------------------------------------------------------------------


def test_history_is_newest_first_with_the_contract_fields(user, other_user, alice, fund, job_type):
    fund(user, 200)
    fund(other_user, 10)
    services.spend(user=user, job_type="fortune")

    response = alice.get(TRANSACTIONS)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    rows = body["results"]
    assert [row["type"] for row in rows] == ["spend", "deposit"]
    assert all(set(row) == TRANSACTION_KEYS for row in rows)
    assert {row["user_id"] for row in rows} == {user.pk}
    spend_row = rows[0]
    assert spend_row["amount"] == -50
    assert spend_row["balance_after"] == 150
    assert spend_row["job_id"] == Job.objects.get(user=user).pk
    assert rows[1]["job_id"] is None


def test_history_pages_with_a_cursor_and_new_rows_do_not_shift_later_pages(user, alice, fund):
    for _ in range(5):
        fund(user, 1)

    first = alice.get(TRANSACTIONS, {"page_size": 2}).json()
    fund(user, 1)  # a new row arrives while the client is paging
    second = alice.get(first["next"]).json()
    third = alice.get(second["next"]).json()

    ids = [row["id"] for page in (first, second, third) for row in page["results"]]
    expected = list(
        Transaction.objects.filter(user=user)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
    )
    assert ids == expected[1:]  # the five rows seen at first, each exactly once, in order
    assert third["next"] is None


def test_history_filters_by_type_and_status(user, other_user, alice, fund):
    fund(user, 100)
    services.transfer(sender=user, recipient=other_user, amount=30)

    only_out = alice.get(TRANSACTIONS, {"type": "transfer_out"}).json()["results"]
    assert [row["type"] for row in only_out] == ["transfer_out"]
    assert alice.get(TRANSACTIONS, {"status": "failed"}).json()["results"] == []
    assert len(alice.get(TRANSACTIONS, {"status": "success"}).json()["results"]) == 2


@pytest.mark.parametrize(
    "params",
    [{"type": "bogus"}, {"status": "gone"}, {"cursor": "bz1hYmM="}, {"cursor": "cD1mb28="}],
)
def test_history_refuses_bad_filters_and_cursors(alice, params):
    status, code = error_of(alice.get(TRANSACTIONS, params))

    assert (status, code) == (400, "validation_error")


def test_transaction_detail_of_own_row(user, alice, fund):
    fund(user, 40)
    txn = Transaction.objects.get(user=user)

    response = alice.get(f"{TRANSACTIONS}/{txn.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == txn.pk
    assert response.json()["amount"] == 40


@pytest.mark.parametrize("suffix", ["999999999", "abc", "1.5", "99999999999999999999999", "-1"])
def test_unknown_transaction_ids_are_404(alice, suffix):
    assert error_of(alice.get(f"{TRANSACTIONS}/{suffix}")) == (404, "not_found")


def test_another_users_transaction_is_404_not_403(other_user, alice, fund):
    fund(other_user, 40)
    theirs = Transaction.objects.get(user=other_user)

    assert error_of(alice.get(f"{TRANSACTIONS}/{theirs.pk}")) == (404, "not_found")


# --- spend --------------------------------------------------------------------------


def test_spend_buys_a_job_at_the_server_price(user, alice, fund, job_type):
    fund(user, 120)

    response = alice.post(
        SPEND, {"job_type": "fortune", "input": {"question": "Will it rain?"}}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"transaction", "job"}
    assert body["transaction"]["type"] == "spend"
    assert body["transaction"]["amount"] == -50
    assert body["transaction"]["balance_after"] == 70
    assert body["transaction"]["job_id"] == body["job"]["id"]
    assert body["job"]["status"] == "pending"
    assert body["job"]["job_type"] == "fortune"
    assert body["job"]["input"] == {"question": "Will it rain?"}
    assert "Idempotent-Replayed" not in response
    assert balance_of(user) == 70
    assert_ledger_consistent()


def test_spend_with_the_matching_amount_is_accepted(user, alice, fund, job_type):
    fund(user, 50)

    response = alice.post(SPEND, {"job_type": "fortune", "amount": 50}, format="json")

    assert response.status_code == 201
    assert balance_of(user) == 0


@pytest.mark.parametrize(("literal", "code"), BAD_AMOUNT_LITERALS, ids=BAD_AMOUNT_IDS)
def test_spend_refuses_every_bad_amount_and_changes_nothing(
    user, alice, fund, job_type, literal, code
):
    fund(user, 500)
    before = ledger_snapshot()

    response = post_raw(alice, SPEND, body_with({"job_type": "fortune"}, amount=literal))

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 400, "validation_error"),
        ({"job_type": ""}, 400, "validation_error"),
        ({"job_type": 7}, 400, "validation_error"),
        ({"job_type": None}, 400, "validation_error"),
        ({"job_type": "no-such-reading"}, 400, "validation_error"),
        ({"job_type": "closed"}, 400, "inactive_job_type"),
        ({"job_type": "fortune", "amount": 49}, 400, "price_mismatch"),
        ({"job_type": "fortune", "input": "question"}, 400, "validation_error"),
        ({"job_type": "fortune", "input": None}, 400, "validation_error"),
        ({"job_type": "fortune", "input": {"q": "x" * 5000}}, 400, "validation_error"),
        ({"job_type": "fortune", "reference_id": ""}, 400, "validation_error"),
        ({"job_type": "fortune", "reference_id": "é"}, 400, "validation_error"),
        ({"job_type": "fortune", "reference_id": "x" * 256}, 400, "validation_error"),
        ({"job_type": "fortune", "reference_id": 12}, 400, "validation_error"),
        ({"job_type": "fortune", "user_id": 1}, 400, "validation_error"),
        ({"job_type": "fortune", "status": "success"}, 400, "validation_error"),
        ({"job_type": "fortune", "balance": 10**6}, 400, "validation_error"),
    ],
)
def test_spend_refuses_bad_bodies_and_changes_nothing(
    user, alice, fund, job_type, body, status, code
):
    JobTypeFactory(code="closed", price=5, active=False)
    fund(user, 500)
    before = ledger_snapshot()

    response = alice.post(SPEND, body, format="json")

    assert error_of(response) == (status, code)
    assert ledger_snapshot() == before


def test_spend_body_that_is_not_an_object_is_400(user, alice, job_type):
    before = ledger_snapshot()

    for text in ('["fortune"]', '"fortune"', "42", "null", "{", ""):
        assert error_of(post_raw(alice, SPEND, text)) == (400, "validation_error"), text
    assert ledger_snapshot() == before


def test_unknown_fields_are_named_in_the_error(user, alice, job_type):
    response = alice.post(SPEND, {"job_type": "fortune", "user_id": 3}, format="json")

    assert response.json()["error"]["details"]["fields"] == {
        "user_id": ["Unknown field; it is not accepted here."]
    }


def test_spend_without_enough_points_is_402_and_audited(user, alice, fund, job_type):
    fund(user, 49)
    before = ledger_snapshot()

    response = alice.post(SPEND, {"job_type": "fortune"}, format="json")

    assert error_of(response) == (402, "insufficient_balance")
    assert response.json()["error"]["details"] == {"balance": 49, "required": 50}
    after = ledger_snapshot()
    assert after["balances"] == before["balances"]
    assert after["transactions"] == before["transactions"]
    assert after["jobs"] == before["jobs"]
    assert AuditEvent.objects.filter(action="wallet.spend.rejected").count() == 1


@override_settings(WALLET_VELOCITY_LIMIT=2)
def test_spend_beyond_the_velocity_limit_is_429(user, alice, fund, job_type):
    fund(user, 500)
    for _ in range(2):
        assert alice.post(SPEND, {"job_type": "fortune"}, format="json").status_code == 201
    before = ledger_snapshot()

    response = alice.post(SPEND, {"job_type": "fortune"}, format="json")

    assert error_of(response) == (429, "velocity_limit_exceeded")
    assert response["Retry-After"] == "60"
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]


# --- transfer -----------------------------------------------------------------------


def test_transfer_moves_points_as_one_pair(user, other_user, alice, fund):
    fund(user, 100)

    response = alice.post(
        TRANSFER,
        {"to_user_id": other_user.pk, "amount": 30, "description": "lunch"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert body["debit"]["amount"] == -30
    assert body["debit"]["user_id"] == user.pk
    assert body["credit"]["amount"] == 30
    assert body["credit"]["user_id"] == other_user.pk
    assert body["debit"]["transfer_id"] == body["credit"]["transfer_id"]
    assert (balance_of(user), balance_of(other_user)) == (70, 30)
    assert_ledger_consistent()


@pytest.mark.parametrize(("literal", "code"), BAD_AMOUNT_LITERALS, ids=BAD_AMOUNT_IDS)
def test_transfer_refuses_every_bad_amount_and_changes_nothing(
    user, other_user, alice, fund, literal, code
):
    fund(user, 500)
    before = ledger_snapshot()

    response = post_raw(alice, TRANSFER, body_with({"to_user_id": other_user.pk}, amount=literal))

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


def test_transfer_above_the_transfer_limit_is_amount_too_large(user, other_user, alice, fund):
    fund(user, 200_000)
    before = ledger_snapshot()

    response = alice.post(TRANSFER, {"to_user_id": other_user.pk, "amount": 100_001}, format="json")

    assert error_of(response) == (400, "amount_too_large")
    assert ledger_snapshot() == before


@pytest.mark.parametrize(
    ("to_user_id", "code"),
    [
        ("self", "self_transfer"),
        ("missing", "unknown_recipient"),
        ("inactive", "unknown_recipient"),
        ('"OTHER"', "validation_error"),
        ("0", "validation_error"),
        ("-1", "validation_error"),
        ("1.0", "validation_error"),
        ("true", "validation_error"),
        ("null", "validation_error"),
        ("99999999999999999999999", "validation_error"),
    ],
)
def test_transfer_refuses_bad_recipients_and_changes_nothing(
    user, other_user, alice, fund, to_user_id, code
):
    fund(user, 500)
    inactive = UserFactory(is_active=False)
    literal = {
        "self": str(user.pk),
        "missing": "987654321",
        "inactive": str(inactive.pk),
        '"OTHER"': f'"{other_user.pk}"',
    }.get(to_user_id, to_user_id)
    before = ledger_snapshot()

    response = post_raw(alice, TRANSFER, body_with({"amount": 5}, to_user_id=literal))

    assert error_of(response) == (400, code)
    assert ledger_snapshot() == before


def test_transfer_without_a_recipient_or_amount_is_400(user, alice, fund):
    fund(user, 500)
    before = ledger_snapshot()

    assert error_of(alice.post(TRANSFER, {"amount": 5}, format="json")) == (
        400,
        "validation_error",
    )
    assert error_of(alice.post(TRANSFER, {"to_user_id": 1}, format="json")) == (
        400,
        "validation_error",
    )
    assert ledger_snapshot() == before


def test_transfer_without_enough_points_is_402(user, other_user, alice, fund):
    fund(user, 10)
    before = ledger_snapshot()

    response = alice.post(TRANSFER, {"to_user_id": other_user.pk, "amount": 11}, format="json")

    assert error_of(response) == (402, "insufficient_balance")
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]


def test_transfer_cannot_be_sent_from_someone_elses_wallet(user, other_user, alice, fund):
    fund(other_user, 100)
    before = ledger_snapshot()

    response = alice.post(
        TRANSFER,
        {"to_user_id": user.pk, "amount": 10, "from_user_id": other_user.pk},
        format="json",
    )

    assert error_of(response) == (400, "validation_error")
    assert ledger_snapshot() == before
