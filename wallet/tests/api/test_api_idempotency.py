"""Idempotency over HTTP: a replay is 200 + `Idempotent-Replayed: true` with the original
body; the same key with another body is 422; racing duplicates make exactly one effect."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.services.api_keys import issue_token
from wallet.tests.api_helpers import error_of, staff_in
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot, run_concurrently

SPEND = "/api/v1/wallet/spend"
TRANSFER = "/api/v1/wallet/transfer"
DEPOSIT = "/api/v1/wallet/deposit"


@pytest.fixture
def as_user(user, client_for):
    return client_for(user)


def _replayed_exactly(first, again) -> None:
    assert first.status_code == 201
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()


@pytest.mark.django_db
@pytest.mark.parametrize("via", ["body", "header"])
def test_spend_replay_returns_the_original_with_200(user, as_user, fund, job_type, via):
    fund(user, 500)
    kwargs = (
        {"data": {"job_type": "fortune", "reference_id": "k1"}}
        if via == "body"
        else {"data": {"job_type": "fortune"}, "HTTP_IDEMPOTENCY_KEY": "k1"}
    )
    first = as_user.post(SPEND, format="json", **kwargs)
    before = ledger_snapshot()

    again = as_user.post(SPEND, format="json", **kwargs)

    _replayed_exactly(first, again)
    assert ledger_snapshot() == before
    assert Wallet.objects.get(user=user).balance == 450


@pytest.mark.django_db
def test_transfer_replay_and_reuse(user, other_user, as_user, fund):
    fund(user, 500)
    body = {"to_user_id": other_user.pk, "amount": 40}
    first = as_user.post(TRANSFER, body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    before = ledger_snapshot()

    again = as_user.post(TRANSFER, body, format="json", HTTP_IDEMPOTENCY_KEY="t-1")
    reused = as_user.post(
        TRANSFER, {**body, "amount": 41}, format="json", HTTP_IDEMPOTENCY_KEY="t-1"
    )

    _replayed_exactly(first, again)
    assert error_of(reused) == (422, "idempotency_key_reused")
    assert ledger_snapshot() == before


@pytest.mark.django_db
def test_deposit_replay_and_reuse(user, client_for):
    payments = client_for(payment_account())
    body = {"user_id": user.pk, "amount": 100, "reference_id": "pay-77"}
    first = payments.post(DEPOSIT, body, format="json")
    before = ledger_snapshot()

    again = payments.post(DEPOSIT, body, format="json")
    reused = payments.post(DEPOSIT, {**body, "amount": 1000}, format="json")

    _replayed_exactly(first, again)
    assert error_of(reused) == (422, "idempotency_key_reused")
    assert ledger_snapshot() == before
    assert Wallet.objects.get(user=user).balance == 100


@pytest.mark.django_db
def test_adjust_and_refund_replay(user, fund, job_type, client_for):
    finance = client_for(staff_in("finance", "fin"))
    fund(user, 100)
    spend = services.spend(user=user, job_type="fortune").transaction
    adjust = ("put", f"/api/v1/admin/users/{user.pk}/points", {"amount": 7, "reason": "gift"})
    refund = ("post", f"/api/v1/admin/transactions/{spend.pk}/refund", {"amount": 5, "reason": "r"})

    for method, path, body in (adjust, refund):
        first = getattr(finance, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY="s-1")
        before = ledger_snapshot()
        again = getattr(finance, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY="s-1")
        _replayed_exactly(first, again)
        assert ledger_snapshot() == before


@pytest.mark.django_db
def test_same_key_other_body_is_422_and_changes_nothing(user, as_user, fund, job_type):
    JobTypeFactory(code="tarot", price=120)
    fund(user, 500)
    as_user.post(SPEND, {"job_type": "fortune"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")
    before = ledger_snapshot()

    response = as_user.post(SPEND, {"job_type": "tarot"}, format="json", HTTP_IDEMPOTENCY_KEY="k2")

    assert error_of(response) == (422, "idempotency_key_reused")
    assert ledger_snapshot() == before


@pytest.mark.django_db
def test_keys_are_per_user(user, other_user, as_user, client_for, fund, job_type):
    fund(user, 100)
    fund(other_user, 100)

    mine = as_user.post(SPEND, {"job_type": "fortune"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    theirs = client_for(other_user).post(
        SPEND, {"job_type": "fortune"}, format="json", HTTP_IDEMPOTENCY_KEY="same"
    )

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["transaction"]["id"] != theirs.json()["transaction"]["id"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\tkey"])
def test_an_invalid_idempotency_key_header_is_400(user, as_user, fund, job_type, key):
    fund(user, 100)
    before = ledger_snapshot()

    response = as_user.post(SPEND, {"job_type": "fortune"}, format="json", HTTP_IDEMPOTENCY_KEY=key)

    assert error_of(response) == (400, "validation_error")
    assert "Idempotency-Key" in response.json()["error"]["details"]["fields"]
    assert ledger_snapshot() == before


@pytest.mark.django_db
def test_body_reference_and_a_different_header_key_are_refused(user, as_user, fund, job_type):
    fund(user, 100)
    before = ledger_snapshot()

    response = as_user.post(
        SPEND,
        {"job_type": "fortune", "reference_id": "a"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="b",
    )

    assert error_of(response) == (400, "validation_error")
    assert ledger_snapshot() == before


def _post(url: str, token: str, body: dict, key: str) -> tuple[int, dict, str | None]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return (
                response.status,
                json.loads(response.read()),
                response.headers.get("Idempotent-Replayed"),
            )
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), error.headers.get("Idempotent-Replayed")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["spend", "transfer", "deposit"])
def test_ten_racing_requests_with_one_key_make_exactly_one_effect(live_server, fund, operation):
    JobTypeFactory(code="fortune", price=50)
    sender, recipient = UserFactory(), UserFactory()
    fund(sender, 1000)
    caller = payment_account() if operation == "deposit" else sender
    _row, token = issue_token(caller)
    path, body, txn_type, owner, expected = {
        "spend": (SPEND, {"job_type": "fortune"}, "spend", sender, 950),
        "transfer": (
            TRANSFER,
            {"to_user_id": recipient.pk, "amount": 30},
            "transfer_out",
            sender,
            970,
        ),
        # The recipient has no wallet yet: ten requests also race to create it.
        "deposit": (DEPOSIT, {"user_id": recipient.pk, "amount": 30}, "deposit", recipient, 30),
    }[operation]

    results = run_concurrently(
        lambda _: _post(f"{live_server.url}{path}", token, body, "race-1"), 10
    )

    assert not [r for r in results if isinstance(r, BaseException)], results
    statuses = sorted(status for status, _, _ in results)
    print(f"{operation} race statuses: {statuses}")
    assert 500 not in statuses
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, statuses
    created = next(body for status, body, _ in results if status == 201)
    for status, answer, replayed in results:
        if status == 200:
            assert replayed == "true"
            assert answer == created
    rows = Transaction.objects.filter(user=owner, type=txn_type, reference_id="race-1")
    assert rows.count() == 1
    assert Wallet.objects.get(user=owner).balance == expected
    assert_ledger_consistent()
