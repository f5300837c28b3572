"""Four-eyes approvals of large adjustments: the services and the HTTP API.

A large adjustment is a pending request until a second staff member approves it (booked
once, in the same DB transaction) or rejects it; the requester never decides; a request
decided or past its expiry is 409; every request and decision is an audit event.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from divine_whispers.errors import (
    ApprovalNotPending,
    IdempotencyKeyReused,
    InsufficientBalance,
    NotFound,
    SelfApprovalForbidden,
    ValidationFailed,
)
from wallet import services
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.tests.api_helpers import error_of, staff_in
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

APPROVALS = "/api/v1/admin/approvals"


@pytest.fixture
def requester(db):
    return staff_in("finance", "fin-requester")


@pytest.fixture
def approver(db):
    return staff_in("finance", "fin-approver")


@pytest.fixture
def funded(user, fund):
    fund(user, 1_000)
    return user


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


def ask(user, requester, amount=50_000, reason="Compensation for outage", **kwargs):
    return services.adjust(user=user, amount=amount, reason=reason, actor=requester, **kwargs)


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def points_url(user_id) -> str:
    return f"/api/v1/admin/users/{user_id}/points"


# --- services ------------------------------------------------------------------------------


def test_a_large_adjustment_becomes_a_pending_request_and_books_nothing(funded, requester):
    before = ledger_snapshot()

    result = ask(funded, requester, reference_id="ticket-9")

    assert isinstance(result, services.ApprovalResult) and not result.replayed
    approval = result.approval
    assert (approval.status, approval.amount, approval.requested_by, approval.user) == (
        "pending",
        50_000,
        requester,
        funded,
    )
    assert approval.expires_at - approval.created_at == timedelta(hours=72)
    after = ledger_snapshot()
    assert (after["balances"], after["transactions"]) == (
        before["balances"],
        before["transactions"],
    )
    event = AuditEvent.objects.get(action="approval.requested")
    assert (event.actor, event.amount, event.metadata["approval_id"]) == (
        requester,
        50_000,
        approval.pk,
    )
    assert_ledger_consistent()


@pytest.mark.parametrize("amount", [9_999, -9_999])
def test_below_the_threshold_an_adjustment_is_booked_at_once(funded, requester, fund, amount):
    fund(funded, 20_000)

    result = ask(funded, requester, amount=amount)

    assert isinstance(result, services.OperationResult)
    assert result.transaction.amount == amount
    assert not ApprovalRequest.objects.exists()


@pytest.mark.parametrize("amount", [10_000, -10_000])
def test_the_threshold_itself_needs_approval_either_sign(funded, requester, fund, amount):
    fund(funded, 20_000)

    assert isinstance(ask(funded, requester, amount=amount), services.ApprovalResult)


def test_threshold_zero_turns_approvals_off(funded, requester, settings):
    settings.WALLET_APPROVAL_THRESHOLD = 0

    result = ask(funded, requester, amount=500_000)

    assert isinstance(result, services.OperationResult)
    assert balance_of(funded) == 501_000


def test_a_request_that_could_never_be_booked_is_refused_at_once(funded, requester):
    before = ledger_snapshot()

    with pytest.raises(InsufficientBalance):
        ask(funded, requester, amount=-20_000)

    assert not ApprovalRequest.objects.exists()
    assert ledger_snapshot()["balances"] == before["balances"]
    assert actions()[-1] == "wallet.adjustment.rejected"


def test_a_request_needs_a_named_requester(funded):
    with pytest.raises(ValidationFailed):
        services.adjust(user=funded, amount=50_000, reason="x", actor=None)


def test_replaying_the_reference_returns_the_same_request(funded, requester):
    first = ask(funded, requester, reference_id="ticket-1").approval

    again = ask(funded, requester, reference_id="ticket-1")

    assert again.replayed and again.approval.pk == first.pk
    assert ApprovalRequest.objects.count() == 1
    with pytest.raises(IdempotencyKeyReused):
        ask(funded, requester, amount=60_000, reference_id="ticket-1")
    with pytest.raises(IdempotencyKeyReused):  # a small amount cannot reuse it either
        ask(funded, requester, amount=5, reference_id="ticket-1")


def test_replay_after_approval_returns_the_approved_request(funded, requester, approver):
    approval = ask(funded, requester, reference_id="ticket-2").approval
    booked = services.approve_adjustment(approval=approval.pk, actor=approver).transaction

    again = ask(funded, requester, reference_id="ticket-2")

    assert again.replayed
    assert (again.approval.status, again.approval.transaction_id) == ("approved", booked.pk)
    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 1


def test_approval_books_the_adjustment_once_and_audits_it(funded, requester, approver):
    approval = ask(funded, requester, reference_id="ticket-3").approval

    decision = services.approve_adjustment(approval=approval.pk, actor=approver)

    row = decision.transaction
    assert (row.type, row.amount, row.description, row.actor, row.reference_id) == (
        "adjustment",
        50_000,
        "Compensation for outage",
        approver,
        "ticket-3",
    )
    assert row.balance_after == balance_of(funded) == 51_000
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by, approval.transaction) == (
        "approved",
        approver,
        row,
    )
    assert actions()[-4:] == [
        "approval.requested",
        "wallet.adjustment",
        "suspicious.large_amount",
        "approval.approved",
    ]
    approved = AuditEvent.objects.get(action="approval.approved")
    assert (approved.actor, approved.transaction, approved.balance_after) == (
        approver,
        row,
        51_000,
    )
    with pytest.raises(ApprovalNotPending):
        services.approve_adjustment(approval=approval.pk, actor=approver)
    assert_ledger_consistent()


def test_rejection_books_nothing_and_keeps_the_reason(funded, requester, approver):
    approval = ask(funded, requester).approval
    before = ledger_snapshot()

    decision = services.reject_adjustment(
        approval=approval.pk, actor=approver, reason="No ticket attached"
    )

    assert decision.transaction is None
    assert (decision.approval.status, decision.approval.decision_reason) == (
        "rejected",
        "No ticket attached",
    )
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert actions()[-1] == "approval.rejected"
    with pytest.raises(ApprovalNotPending):
        services.approve_adjustment(approval=approval.pk, actor=approver)


@pytest.mark.parametrize("reason", ["", "   ", None, 5])
def test_rejection_needs_a_reason(funded, requester, approver, reason):
    approval = ask(funded, requester).approval

    with pytest.raises(ValidationFailed):
        services.reject_adjustment(approval=approval.pk, actor=approver, reason=reason)

    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.parametrize("decide", ["approve", "reject"])
def test_the_requester_never_decides_their_own_request(funded, requester, decide):
    approval = ask(funded, requester).approval
    before = ledger_snapshot()

    with pytest.raises(SelfApprovalForbidden):
        if decide == "approve":
            services.approve_adjustment(approval=approval.pk, actor=requester)
        else:
            services.reject_adjustment(approval=approval.pk, actor=requester, reason="mine")

    approval.refresh_from_db()
    assert approval.status == "pending"
    assert ledger_snapshot()["transactions"] == before["transactions"]
    refused = AuditEvent.objects.get(action="approval.self_decision_refused")
    assert (refused.actor, refused.metadata["decision"]) == (requester, decide)


def test_approval_that_would_go_negative_is_402_and_stays_pending(
    funded, requester, approver, fund, job_type
):
    fund(funded, 20_000)  # 21,000
    approval = ask(funded, requester, amount=-15_000).approval
    services.adjust(user=funded, amount=-9_000, reason="other correction", actor=requester)

    with pytest.raises(InsufficientBalance):
        services.approve_adjustment(approval=approval.pk, actor=approver)

    approval.refresh_from_db()
    assert approval.status == "pending"
    assert balance_of(funded) == 12_000
    assert actions()[-1] == "wallet.adjustment.rejected"
    assert_ledger_consistent()


def test_a_request_past_its_expiry_reads_expired_and_cannot_be_decided(
    funded, requester, approver, settings
):
    settings.WALLET_APPROVAL_TTL_HOURS = 0  # expires the moment it is created
    approval = ask(funded, requester).approval
    assert approval.effective_status == "expired"

    with pytest.raises(ApprovalNotPending) as refused:
        services.approve_adjustment(approval=approval.pk, actor=approver)

    assert refused.value.details["status"] == "expired"
    approval.refresh_from_db()
    assert approval.status == "expired"  # recorded, with its audit event, once
    assert actions().count("approval.expired") == 1
    with pytest.raises(ApprovalNotPending):
        services.reject_adjustment(approval=approval.pk, actor=approver, reason="late")
    assert actions().count("approval.expired") == 1
    assert not Transaction.objects.filter(type=TransactionType.ADJUSTMENT).exists()


def test_ttl_comes_from_the_setting(funded, requester, settings):
    settings.WALLET_APPROVAL_TTL_HOURS = 1

    approval = ask(funded, requester).approval

    assert approval.expires_at - approval.created_at == timedelta(hours=1)


def test_deciding_an_unknown_request_is_not_found(approver):
    with pytest.raises(NotFound):
        services.approve_adjustment(approval=987654, actor=approver)


# --- the database's own guards ---------------------------------------------------------------


def test_database_refuses_a_decision_by_the_requester(funded, requester):
    approval = ask(funded, requester).approval

    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            status="rejected", decided_by=requester, decided_at=timezone.now(), decision_reason="x"
        )


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger is PostgreSQL's (suite runs on it)"
)
def test_database_refuses_changing_a_request_or_a_decided_one(funded, requester, approver):
    approval = ask(funded, requester).approval
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=approval.pk).update(amount=900_000)
    services.reject_adjustment(approval=approval.pk, actor=approver, reason="no")
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.filter(pk=approval.pk).update(
            status="pending", decided_by=None, decided_at=None, decision_reason=""
        )
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM wallet_approvalrequest WHERE id = %s", [approval.pk])


# --- HTTP API ---------------------------------------------------------------------------------


def test_put_points_above_threshold_answers_202_with_the_request(funded, requester, client_for):
    response = client_for(requester).put(
        points_url(funded.pk),
        {"amount": 500_000, "reason": "Migration fix", "reference_id": "mig-1"},
        format="json",
    )

    assert response.status_code == 202
    body = response.json()["approval"]
    assert {
        "id",
        "status",
        "user_id",
        "amount",
        "reason",
        "requested_by",
        "decided_by",
        "transaction_id",
        "expires_at",
        "created_at",
    } <= set(body)
    assert (body["status"], body["amount"], body["user_id"], body["requested_by"]) == (
        "pending",
        500_000,
        funded.pk,
        requester.pk,
    )
    assert (body["decided_by"], body["transaction_id"]) == (None, None)
    assert balance_of(funded) == 1_000

    replay = client_for(requester).put(
        points_url(funded.pk),
        {"amount": 500_000, "reason": "Migration fix", "reference_id": "mig-1"},
        format="json",
    )
    assert replay.status_code == 200
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["approval"]["id"] == body["id"]


def test_api_approve_answers_201_with_approval_and_transaction(
    funded, requester, approver, client_for
):
    approval = ask(funded, requester).approval

    response = client_for(approver).post(f"{APPROVALS}/{approval.pk}/approve")

    assert response.status_code == 201
    body = response.json()
    assert body["approval"]["status"] == "approved"
    assert body["approval"]["decided_by"] == approver.pk
    assert body["transaction"]["id"] == body["approval"]["transaction_id"]
    assert (body["transaction"]["type"], body["transaction"]["amount"]) == ("adjustment", 50_000)
    again = client_for(approver).post(f"{APPROVALS}/{approval.pk}/approve")
    assert error_of(again) == (409, "approval_not_pending")
    assert balance_of(funded) == 51_000


def test_api_reject_needs_a_reason_and_answers_200(funded, requester, approver, client_for):
    approval = ask(funded, requester).approval
    client = client_for(approver)

    for body in ({}, {"reason": ""}, {"reason": "  "}, {"reason": 3}, {"reason": "x" * 501}):
        assert error_of(client.post(f"{APPROVALS}/{approval.pk}/reject", body, format="json")) == (
            400,
            "validation_error",
        )
    response = client.post(f"{APPROVALS}/{approval.pk}/reject", {"reason": "dup"}, format="json")

    assert response.status_code == 200
    assert response.json()["approval"]["status"] == "rejected"
    assert response.json()["approval"]["decision_reason"] == "dup"


def test_api_approve_refuses_unknown_fields(funded, requester, approver, client_for):
    approval = ask(funded, requester).approval

    response = client_for(approver).post(
        f"{APPROVALS}/{approval.pk}/approve", {"amount": 1}, format="json"
    )

    assert error_of(response) == (400, "validation_error")
    approval.refresh_from_db()
    assert approval.status == "pending"


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_api_self_decision_is_403_self_approval_forbidden(funded, requester, client_for, decision):
    approval = ask(funded, requester).approval

    body = {"reason": "mine"} if decision == "reject" else {}
    response = client_for(requester).post(
        f"{APPROVALS}/{approval.pk}/{decision}", body, format="json"
    )

    assert error_of(response) == (403, "self_approval_forbidden")


def test_api_decisions_need_the_approve_permission(funded, requester, client_for):
    approval = ask(funded, requester).approval
    support = staff_in("support", "sup")
    only_adjust = staff_in("support", "adjuster")
    only_adjust.user_permissions.add(*Permission.objects.filter(codename="adjust_points"))

    for actor in (support, only_adjust, funded):
        for decision in ("approve", "reject"):
            response = client_for(actor).post(
                f"{APPROVALS}/{approval.pk}/{decision}", {"reason": "x"}, format="json"
            )
            assert error_of(response) == (403, "permission_denied")
    assert AuditEvent.objects.filter(action="api.permission_denied").count() == 6
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_api_approve_when_balance_would_go_negative_is_402(
    funded, requester, approver, client_for, fund
):
    fund(funded, 20_000)
    approval = ask(funded, requester, amount=-15_000).approval
    services.adjust(user=funded, amount=-9_000, reason="other", actor=requester)

    response = client_for(approver).post(f"{APPROVALS}/{approval.pk}/approve")

    assert error_of(response) == (402, "insufficient_balance")
    assert client_for(approver).get(f"{APPROVALS}/{approval.pk}").json()["status"] == "pending"


def test_api_list_is_newest_first_filterable_and_paginated(
    funded, requester, approver, client_for, settings
):
    settings.WALLET_APPROVAL_TTL_HOURS = 0
    first = ask(funded, requester, amount=11_000).approval
    settings.WALLET_APPROVAL_TTL_HOURS = 72
    second = ask(funded, requester, amount=12_000).approval
    third = ask(funded, requester, amount=13_000).approval
    services.reject_adjustment(approval=second.pk, actor=approver, reason="no")
    client = client_for(requester)

    everything = client.get(APPROVALS).json()
    assert [row["id"] for row in everything["results"]] == [third.pk, second.pk, first.pk]
    assert everything["count"] == 3

    def ids(status: str) -> list[int]:
        response = client.get(APPROVALS, {"status": status})
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    assert ids("pending") == [third.pk]
    assert ids("rejected") == [second.pk]
    assert ids("expired") == [first.pk]
    assert ids("approved") == []
    assert client.get(f"{APPROVALS}/{first.pk}").json()["status"] == "expired"
    assert client.get(APPROVALS, {"page_size": 1}).json()["next"] is not None
    assert error_of(client.get(APPROVALS, {"status": "bogus"})) == (400, "validation_error")
    assert error_of(client.get(f"{APPROVALS}/999999")) == (404, "not_found")


def test_api_reading_needs_adjust_or_approve_permission(funded, requester, client_for):
    ask(funded, requester)
    approver_only = staff_in("support", "approver-only")
    approver_only.user_permissions.add(*Permission.objects.filter(codename="approve_adjustment"))

    assert client_for(approver_only).get(APPROVALS).status_code == 200
    assert error_of(client_for(staff_in("support", "sup")).get(APPROVALS)) == (
        403,
        "permission_denied",
    )
    assert error_of(client_for(funded).get(APPROVALS)) == (403, "permission_denied")


def test_verify_ledger_is_clean_after_every_kind_of_approval_event(
    funded, requester, approver, settings
):
    from wallet.verification import verify_ledger

    approved = ask(funded, requester, reference_id="v-1").approval
    services.approve_adjustment(approval=approved.pk, actor=approver)
    rejected = ask(funded, requester).approval
    services.reject_adjustment(approval=rejected.pk, actor=approver, reason="no")
    with pytest.raises(SelfApprovalForbidden):
        services.approve_adjustment(approval=ask(funded, requester).approval.pk, actor=requester)
    settings.WALLET_APPROVAL_TTL_HOURS = 0
    with pytest.raises(ApprovalNotPending):
        services.approve_adjustment(approval=ask(funded, requester).approval.pk, actor=approver)

    report = verify_ledger()

    assert report.clean, [finding.line() for finding in report.findings]
    assert {"approval.approved", "approval.rejected", "approval.expired"} <= set(actions())


def test_an_approved_adjustment_is_counted_in_the_metrics_when_booked(
    funded, requester, approver, client, settings
):
    from divine_whispers.tests.metrics_helpers import samples, value

    settings.METRICS_TOKEN = "metrics-test-token-0123456789"
    settings.METRICS_ALLOWED_IPS = []

    def scrape() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}")
        return samples(response.content.decode())

    before = scrape()
    approval = ask(funded, requester, amount=12_000).approval
    asked = scrape()
    services.approve_adjustment(approval=approval.pk, actor=approver)
    after = scrape()

    points = "divine_whispers_points_total"
    assert value(asked, points, type="adjustment") == value(before, points, type="adjustment")
    assert value(after, points, type="adjustment") - value(before, points, type="adjustment") == (
        12_000
    )
