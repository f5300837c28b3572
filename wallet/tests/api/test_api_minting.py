"""Minting controls over HTTP: each bypass an outside attack found now fails.

finance deposits to itself; 50 adjustments of 9,999 in a row; a finance user adjusting
their own wallet below the threshold; the owner of a wallet approving a request crediting
themselves. (Key issuance as a lever: wallet/tests/api/test_api_tokens.py.)
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from audit.models import AuditEvent
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import ApprovalRequest, Transaction, Wallet
from wallet.tests.api_helpers import error_of, staff_in
from wallet.tests.factories import StaffFactory, UserFactory
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

DEPOSIT = "/api/v1/wallet/deposit"


def points_url(user_id: int) -> str:
    return f"/api/v1/admin/users/{user_id}/points"


def approve_url(approval_id: int) -> str:
    return f"/api/v1/admin/approvals/{approval_id}/approve"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.WALLET_APPROVAL_THRESHOLD = 10_000
    settings.API_THROTTLE_RATE = "100000/minute"


@pytest.fixture
def fin(db):
    return staff_in("finance", "fin")


@pytest.fixture
def fin2(db):
    return staff_in("finance", "fin2")


def _without_audit(snapshot: dict) -> dict:
    return {k: v for k, v in snapshot.items() if k != "audit"}


def test_finance_cannot_deposit_a_million_into_its_own_wallet(fin, client_for):
    before = ledger_snapshot()

    response = client_for(fin).post(
        DEPOSIT, {"user_id": fin.pk, "amount": 1_000_000, "reference_id": "any"}, format="json"
    )

    assert error_of(response) == (403, "permission_denied")
    assert _without_audit(ledger_snapshot()) == _without_audit(before)


@pytest.mark.parametrize("who", ["staff_with_the_right", "superuser"])
def test_staff_holding_the_deposit_right_anyway_are_refused_by_the_service(client_for, user, who):
    if who == "superuser":
        actor = StaffFactory(username="root", is_superuser=True)
    else:
        actor = StaffFactory(username="misconfigured")
        actor.user_permissions.add(Permission.objects.get(codename="deposit_points"))
    before = ledger_snapshot()

    response = client_for(actor).post(
        DEPOSIT, {"user_id": user.pk, "amount": 1_000_000, "reference_id": "any"}, format="json"
    )

    assert error_of(response) == (403, "permission_denied")
    assert _without_audit(ledger_snapshot()) == _without_audit(before)
    assert AuditEvent.objects.filter(action="wallet.deposit.refused", actor=actor).count() == 1


def test_the_payment_account_is_refused_its_own_wallet(payer, client_for):
    response = client_for(payer).post(
        DEPOSIT, {"user_id": payer.pk, "amount": 5, "reference_id": "self"}, format="json"
    )

    assert error_of(response) == (403, "self_dealing_forbidden")
    assert not Transaction.objects.exists()


def test_fifty_adjustments_of_9999_book_one_and_ask_approval_for_the_rest(fin, client_for):
    client = client_for(fin)
    customers = [UserFactory() for _ in range(50)]

    statuses = [
        client.put(
            points_url(customer.pk), {"amount": 9_999, "reason": "goodwill"}, format="json"
        ).status_code
        for customer in customers
    ]

    assert statuses == [201] + [202] * 49
    assert sum(Wallet.objects.values_list("balance", flat=True)) == 9_999
    assert ApprovalRequest.objects.filter(status="pending").count() == 49
    assert AuditEvent.objects.filter(action="suspicious.cumulative_amount").count() == 49
    assert_ledger_consistent()


def test_the_same_wallet_by_two_people_counts_together(fin, fin2, client_for, user):
    first = client_for(fin).put(
        points_url(user.pk), {"amount": 9_000, "reason": "a"}, format="json"
    )
    second = client_for(fin2).put(
        points_url(user.pk), {"amount": 1_000, "reason": "b"}, format="json"
    )

    assert (first.status_code, second.status_code) == (201, 202)
    assert second.json()["approval"]["status"] == "pending"


def test_a_finance_user_cannot_adjust_their_own_wallet_below_the_threshold(fin, client_for):
    before = ledger_snapshot()

    response = client_for(fin).put(
        points_url(fin.pk), {"amount": 500, "reason": "mine"}, format="json"
    )

    assert error_of(response) == (403, "self_dealing_forbidden")
    assert _without_audit(ledger_snapshot()) == _without_audit(before)
    event = AuditEvent.objects.get(action="suspicious.self_dealing")
    assert (event.actor_id, event.amount, event.metadata["attempted"]) == (
        fin.pk,
        500,
        "wallet.adjustment",
    )


def test_the_owner_cannot_approve_a_request_crediting_themselves(fin, fin2, client_for):
    asked = client_for(fin).put(
        points_url(fin2.pk), {"amount": 50_000, "reason": "for fin2"}, format="json"
    )
    assert asked.status_code == 202
    approval_id = asked.json()["approval"]["id"]

    response = client_for(fin2).post(approve_url(approval_id), {}, format="json")

    assert error_of(response) == (403, "self_dealing_forbidden")
    assert not Transaction.objects.filter(user=fin2).exists()
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"


def test_a_staff_wallet_is_approved_only_by_a_superuser(fin, fin2, client_for):
    peer = staff_in("finance", "fin3")
    root = StaffFactory(username="root", is_superuser=True)
    asked = client_for(fin).put(points_url(fin2.pk), {"amount": 5, "reason": "tiny"}, format="json")
    assert asked.status_code == 202  # any change to a staff wallet waits
    approval_id = asked.json()["approval"]["id"]

    by_peer = client_for(peer).post(approve_url(approval_id), {}, format="json")
    by_root = client_for(root).post(approve_url(approval_id), {}, format="json")

    assert error_of(by_peer) == (403, "self_dealing_forbidden")
    assert by_root.status_code == 201
    assert Wallet.objects.get(user=fin2).balance == 5


def test_support_cannot_refund_its_own_spend(client_for):
    support = staff_in("support", "sup")
    JobTypeFactory(code="fortune", price=50)
    services.deposit(user=support, amount=100, reference_id="own", actor=None)
    spend = services.spend(user=support, job_type="fortune").transaction

    response = client_for(support).post(
        f"/api/v1/admin/transactions/{spend.pk}/refund", {"reason": "mine"}, format="json"
    )

    assert error_of(response) == (403, "self_dealing_forbidden")
    assert Wallet.objects.get(user=support).balance == 50


def grants_url(user_id: int) -> str:
    return f"/api/v1/admin/users/{user_id}/grants"


def test_finance_cannot_grant_promotional_points_to_itself(fin, client_for):
    before = ledger_snapshot()

    response = client_for(fin).post(
        grants_url(fin.pk), {"amount": 500, "reason": "mine"}, format="json"
    )

    assert error_of(response) == (403, "self_dealing_forbidden")
    assert _without_audit(ledger_snapshot()) == _without_audit(before)
    assert AuditEvent.objects.filter(action="suspicious.self_dealing", actor=fin).count() == 1


def test_grants_and_adjustments_count_together_toward_the_threshold(fin, client_for):
    """A grant of 9,999 then an adjustment of 9,999 by one person: the second is asked."""
    alice, bob = UserFactory(), UserFactory()
    client = client_for(fin)

    granted = client.post(grants_url(alice.pk), {"amount": 9_999, "reason": "promo"}, format="json")
    adjusted = client.put(
        points_url(bob.pk), {"amount": 9_999, "reason": "goodwill"}, format="json"
    )
    granted_again = client.post(grants_url(bob.pk), {"amount": 1, "reason": "promo"}, format="json")

    assert (granted.status_code, adjusted.status_code, granted_again.status_code) == (
        201,
        202,
        202,
    )
    assert Wallet.objects.get(user=bob).balance == 0
    assert_ledger_consistent()
