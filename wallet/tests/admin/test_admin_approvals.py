"""Four-eyes approvals in the admin: the queue, a clear page for the requester, approve
(confirm, then booked once) and reject (with a reason), never on one's own request."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from wallet import services
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.tests.admin_helpers import logged_in, messages_of, staff_in_group
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def requester(db):
    return staff_in_group("fin-requester", "finance")


@pytest.fixture
def approver(db):
    return staff_in_group("fin-approver", "finance")


@pytest.fixture
def approval(user, fund, requester) -> ApprovalRequest:
    fund(user, 1_000)
    return services.adjust(
        user=user, amount=25_000, reason="Chargeback reversal #77", actor=requester
    ).approval


def url(name: str, approval: ApprovalRequest | None = None) -> str:
    args = [approval.pk] if approval is not None else []
    return reverse(f"admin:wallet_approvalrequest_{name}", args=args)


def test_the_queue_lists_pending_requests_waiting_for_me(approval, approver, requester):
    page = logged_in(approver).get(url("changelist"), {"whose": "to_decide"})
    mine = logged_in(requester).get(url("changelist"), {"whose": "to_decide"})

    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [approval]
    assert list(mine.context["cl"].result_list) == []  # their own request is not theirs to decide
    html = page.content.decode()
    assert "+25,000" in html
    assert "Waiting for my decision" in html


def test_the_requester_sees_where_the_request_stands_and_no_buttons(approval, requester):
    html = logged_in(requester).get(url("change", approval)).content.decode()

    assert "You asked for this adjustment of +25,000 points" in html
    assert "you cannot decide it yourself" in html
    assert url("approve", approval) not in html
    assert url("reject", approval) not in html


def test_an_approver_confirms_then_the_adjustment_is_booked_once(approval, approver, user):
    client = logged_in(approver)
    change_page = client.get(url("change", approval)).content.decode()
    confirm_page = client.get(url("approve", approval)).content.decode()
    before = ledger_snapshot()
    assert ledger_snapshot() == before  # opening the pages moved nothing

    done = client.post(url("approve", approval), follow=True)
    again = client.post(url("approve", approval))

    assert url("approve", approval) in change_page
    assert 'id="confirm-balance" class="figure">1,000 → 26,000 points' in confirm_page
    assert 'value="Approve and book +25,000 points"' in confirm_page
    row = Transaction.objects.get(type=TransactionType.ADJUSTMENT)
    assert messages_of(done) == [
        f"Approved request #{approval.pk}: booked adjustment #{row.pk} of +25,000 points for "
        f"{user}. New balance: 26,000 points."
    ]
    # Back to the approve page (or posting it again): the booked result, no second booking.
    again_html = again.content.decode()
    assert "This request was already approved by" in again_html
    assert "leaving a balance of 26,000 points. Nothing more will happen." in again_html
    assert 'id="confirm-button"' not in again_html and "→" not in again_html
    assert Wallet.objects.get(user=user).balance == 26_000
    assert (row.actor, row.description) == (approver, "Chargeback reversal #77")
    assert_ledger_consistent()


def test_an_approver_rejects_with_a_reason(approval, approver, user):
    client = logged_in(approver)
    before = ledger_snapshot()

    blank = client.post(url("reject", approval), {"reason": "  "})
    done = client.post(url("reject", approval), {"reason": "No ticket attached"}, follow=True)

    assert blank.context["form"].errors["reason"] == ["A reason is required."]
    assert messages_of(done)[0].startswith(f"Rejected request #{approval.pk}")
    assert "“No ticket attached”" in done.content.decode()
    approval.refresh_from_db()
    assert (approval.status, approval.decided_by) == ("rejected", approver)
    assert ledger_snapshot()["transactions"] == before["transactions"]


def test_the_requester_cannot_approve_even_by_posting(approval, requester, user):
    client = logged_in(requester)

    page = client.get(url("approve", approval)).content.decode()
    posted = client.post(url("approve", approval)).content.decode()

    assert "confirm-button" not in page
    assert "self_approval_forbidden" in posted
    approval.refresh_from_db()
    assert approval.status == "pending"
    assert Wallet.objects.get(user=user).balance == 1_000
    assert AuditEvent.objects.filter(action="approval.self_decision_refused").count() == 1


def test_support_cannot_see_or_decide_approvals(approval):
    support = logged_in(staff_in_group("support-agent", "support"))

    listing = support.get(url("changelist"))
    approve = support.post(url("approve", approval))

    assert (listing.status_code, approve.status_code) == (403, 403)
    assert "wallet.approve_adjustment" in approve.content.decode()
    approval.refresh_from_db()
    assert approval.status == "pending"


def test_the_403_page_names_the_permission_and_is_audited(approval):
    support_user = staff_in_group("support-agent", "support")

    response = logged_in(support_user).get(url("reject", approval))

    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="missing-permission">wallet.approve_adjustment</code>' in html
    assert "Can approve or reject a large adjustment" in html
    event = AuditEvent.objects.get(action="admin.permission_denied")
    assert (event.actor, event.metadata["permission"]) == (
        support_user,
        "wallet.approve_adjustment",
    )


def test_the_wallet_page_links_its_approval_requests(approval, approver, user):
    client = logged_in(approver)
    wallet = Wallet.objects.get(user=user)

    page = client.get(reverse("admin:wallet_wallet_change", args=[wallet.pk])).content.decode()
    listed = client.get(url("changelist"), {"wallet__id__exact": wallet.pk})

    assert "1 pending (all requests of this wallet)" in page
    assert listed.status_code == 200
    assert list(listed.context["cl"].result_list) == [approval]
