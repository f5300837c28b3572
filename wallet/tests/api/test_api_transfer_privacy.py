"""Privacy of a transfer (contract: Privacy): the sender never learns the recipient's
balance; the recipient sees their row in full in their own history."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db

TRANSFER = "/api/v1/wallet/transfer"


def test_the_sender_sees_the_credit_leg_without_the_recipients_balance(
    user, other_user, client_for, fund
):
    fund(user, 100)
    fund(other_user, 7_654)
    body = {"to_user_id": other_user.pk, "amount": 1, "reference_id": "peek-1"}
    sender = client_for(user)

    created = sender.post(TRANSFER, body, format="json")
    replayed = sender.post(TRANSFER, body, format="json")

    for response in (created, replayed):
        assert response.status_code in (200, 201)
        data = response.json()
        assert data["credit"]["balance_after"] is None
        assert data["credit"]["amount"] == 1
        assert data["credit"]["user_id"] == other_user.pk
        assert data["debit"]["balance_after"] == 99  # the sender's own balance
        assert "7655" not in response.content.decode()
    assert replayed["Idempotent-Replayed"] == "true"


def test_the_recipient_sees_the_credit_in_full(user, other_user, client_for, fund):
    fund(user, 100)
    fund(other_user, 7_654)
    sent = client_for(user).post(
        TRANSFER, {"to_user_id": other_user.pk, "amount": 1}, format="json"
    )
    credit_id = sent.json()["credit"]["id"]
    recipient = client_for(other_user)

    history = recipient.get("/api/v1/wallet/transactions", {"type": "transfer_in"}).json()
    detail = recipient.get(f"/api/v1/wallet/transactions/{credit_id}").json()

    assert history["results"][0]["id"] == credit_id
    assert history["results"][0]["balance_after"] == 7_655
    assert detail["balance_after"] == 7_655


def test_the_sender_cannot_read_the_credit_leg_by_id(user, other_user, client_for, fund):
    fund(user, 100)
    sent = client_for(user).post(
        TRANSFER, {"to_user_id": other_user.pk, "amount": 1}, format="json"
    )

    response = client_for(user).get(f"/api/v1/wallet/transactions/{sent.json()['credit']['id']}")

    assert response.status_code == 404
