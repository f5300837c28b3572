"""Minting controls in the admin (Django test client): the same services refuse, and the
pages say why before anyone presses a button."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from wallet import services
from wallet.models import ApprovalRequest, Transaction, Wallet
from wallet.tests.admin_helpers import confirm_flow, logged_in, staff_in_group, start_flow

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.WALLET_APPROVAL_THRESHOLD = 10_000


@pytest.fixture
def fin(db):
    return staff_in_group("fin", "finance")


def _adjust(
    client, wallet: Wallet, amount: int, reason: str = "Goodwill", *, acknowledge: bool = False
):
    started = start_flow(
        client,
        reverse("admin:wallet_wallet_adjust", args=[wallet.pk]),
        {"amount": str(amount), "reason": reason},
    )
    assert started.status_code == 302, started.content[:500]
    page = client.get(started["Location"]).content.decode()
    return page, confirm_flow(client, started["Location"], acknowledge=acknowledge)


def _wallet_of(user) -> Wallet:
    Wallet.objects.ensure_for_users([user.pk])
    return Wallet.objects.get(user=user)


def test_finance_cannot_adjust_its_own_wallet_in_the_admin(fin):
    page, response = _adjust(logged_in(fin), _wallet_of(fin), 500)

    assert "This is your own wallet" in page
    assert "self_dealing_forbidden" in response.content.decode()
    assert not Transaction.objects.exists()
    assert AuditEvent.objects.filter(action="suspicious.self_dealing", actor=fin).count() == 1


def test_the_second_small_adjustment_becomes_an_approval_request(fin, user):
    client = logged_in(fin)
    _adjust(client, _wallet_of(user), 9_999)

    # The same amount again: the page also warns of the recent identical adjustment, which
    # the staff member acknowledges.
    page, response = _adjust(
        client, _wallet_of(user), 9_999, reason="Goodwill, again", acknowledge=True
    )

    assert "in the last 24 hours it reaches 10,000 points" in page
    assert 'value="Request approval of +9,999 points"' in page
    approval = ApprovalRequest.objects.get()
    assert response.redirect_chain[-1][0] == reverse(
        "admin:wallet_approvalrequest_change", args=[approval.pk]
    )
    assert Wallet.objects.get(user=user).balance == 9_999


def test_the_owner_sees_no_approve_button_and_posting_is_refused(fin):
    fin2 = staff_in_group("fin2", "finance")
    approval = services.adjust(user=fin2, amount=50_000, reason="for fin2", actor=fin).approval
    client = logged_in(fin2)
    change = reverse("admin:wallet_approvalrequest_change", args=[approval.pk])
    approve = reverse("admin:wallet_approvalrequest_approve", args=[approval.pk])

    page = client.get(change).content.decode()
    posted = client.post(approve).content.decode()

    assert approve not in page
    assert 'id="self-dealing"' in page
    assert "self_dealing_forbidden" in posted
    approval.refresh_from_db()
    assert approval.status == "pending"
    assert not Transaction.objects.exists()


def test_a_peer_cannot_approve_a_staff_wallet_but_a_superuser_can(fin):
    fin2, peer = staff_in_group("fin2", "finance"), staff_in_group("fin3", "finance")
    root = staff_in_group("root", None, is_superuser=True)
    approval = services.adjust(user=fin2, amount=5, reason="tiny", actor=fin).approval
    approve = reverse("admin:wallet_approvalrequest_approve", args=[approval.pk])

    refused = logged_in(peer).post(approve).content.decode()
    done = logged_in(root).post(approve, follow=True)

    assert "only through an approval request that a superuser" in refused
    assert done.status_code == 200
    assert Wallet.objects.get(user=fin2).balance == 5


def test_the_grant_confirmation_previews_the_minting_rules(fin, user):
    """The grant page says what services.grant will decide: the cumulative threshold
    (with adjustments) asks for a second person, one's own wallet is refused."""
    client = logged_in(fin)
    _adjust(client, _wallet_of(user), 9_999)
    started = start_flow(
        client,
        reverse("admin:wallet_wallet_grant", args=[_wallet_of(user).pk]),
        {"amount": "5", "reason": "Promo", "campaign": "", "expires_at": ""},
    )
    assert started.status_code == 302, started.content[:500]
    page = client.get(started["Location"]).content.decode()
    assert "in the last 24 hours it reaches 10,000 points" in page
    assert "Request approval of a grant of 5 points" in page

    own = start_flow(
        client,
        reverse("admin:wallet_wallet_grant", args=[_wallet_of(fin).pk]),
        {"amount": "5", "reason": "Mine", "campaign": "", "expires_at": ""},
    )
    assert "This is your own wallet" in client.get(own["Location"]).content.decode()
