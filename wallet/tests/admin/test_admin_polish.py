"""The back-office's rough edges, fixed (issue 13): who a transfer went to, transfer ids
searchable, the audit list by actor with readable actions, numbers with separators and
signs, times with seconds and zone, a job's title, no empty History, no "View site"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from divine_whispers.points_format import points, signed_points
from wallet import services
from wallet.models import Transaction, TransactionType
from wallet.tests.admin_helpers import logged_in, staff_in_group
from wallet.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WHEN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def support(db):
    return staff_in_group("support-agent", "support")


@pytest.fixture
def transfer(user, fund):
    user.username = "carol"
    user.save()
    dave = UserFactory(username="dave")
    fund(user, 25_000)
    return services.transfer(sender=user, recipient=dave, amount=12_345)


def test_points_are_written_with_separators_and_signs():
    assert (points(1234567), points(0), points(None)) == ("1,234,567", "0", "—")
    assert (signed_points(12345), signed_points(-40), signed_points(0)) == ("+12,345", "-40", "0")


def test_transfer_rows_show_the_other_party(support, transfer):
    page = logged_in(support).get(reverse("admin:wallet_transaction_changelist"))

    html = page.content.decode()
    assert f"to dave (user #{transfer.credit.user_id})" in html
    assert f"from carol (user #{transfer.debit.user_id})" in html
    assert "-12,345" in html and "+12,345" in html
    assert "12,655" in html  # carol's balance after, with its separator
    assert 'class="field-signed_amount"' in html
    assert "wallet/admin.css" in html  # right-aligned figures


def test_a_transfer_id_finds_both_legs(support, transfer):
    page = logged_in(support).get(
        reverse("admin:wallet_transaction_changelist"), {"q": str(transfer.debit.transfer_id)}
    )

    found = {row.pk for row in page.context["cl"].result_list}
    assert found == {transfer.debit.pk, transfer.credit.pk}


def test_the_other_party_costs_one_query_per_page(
    support, transfer, user, fund, django_assert_max_num_queries
):
    for i in range(10):
        services.transfer(sender=user, recipient=transfer.credit.user, amount=1 + i)
    client = logged_in(support)
    client.get(reverse("admin:wallet_transaction_changelist"))  # warm the session

    with django_assert_max_num_queries(12):
        client.get(reverse("admin:wallet_transaction_changelist"))


def test_audit_list_filters_by_actor_and_shows_readable_actions(support, transfer, staff, user):
    services.adjust(user=user, amount=-5, reason="typo", actor=support)
    client = logged_in(support)

    by_support = client.get(reverse("admin:audit_auditevent_changelist"), {"actor": support.pk})
    by_system = client.get(reverse("admin:audit_auditevent_changelist"), {"actor": "system"})
    labelled = client.get(
        reverse("admin:audit_auditevent_changelist"), {"action": "wallet.transfer_out"}
    )

    assert {event.actor_id for event in by_support.context["cl"].result_list} == {support.pk}
    assert all(e.actor_id is None for e in by_system.context["cl"].result_list)
    html = labelled.content.decode()
    assert "Transfer sent" in html
    assert [e.action for e in labelled.context["cl"].result_list] == ["wallet.transfer_out"]
    assert "support-agent" in by_support.content.decode()  # offered as a filter choice


def test_list_times_have_seconds_and_time_zone(support, transfer):
    for name in ("wallet_transaction", "audit_auditevent", "wallet_wallet"):
        html = logged_in(support).get(reverse(f"admin:{name}_changelist")).content.decode()
        assert WHEN.search(html), name


def test_job_page_title_names_the_job_type(support, user, fund, job_type):
    fund(user, 100)
    job = services.spend(user=user, job_type=job_type).job

    html = logged_in(support).get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()

    assert f"Job #{job.pk} Fortune reading (pending)" in html
    assert f"Job #{job.pk} {job_type.pk} " not in html


def test_no_view_site_link_and_no_empty_history(support, transfer):
    client = logged_in(support)
    index = client.get(reverse("admin:index")).content.decode()
    txn_page = client.get(
        reverse("admin:wallet_transaction_change", args=[transfer.debit.pk])
    ).content.decode()
    event = AuditEvent.objects.order_by("id").first()
    event_page = client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).content

    assert "View site" not in index
    assert "Divine Whispers back-office" in index
    assert "historylink" not in txn_page
    assert "Audit trail" in txn_page
    assert b"historylink" not in event_page


def test_recent_actions_lists_the_staff_members_money_actions(support, user, fund, job_type):
    fund(user, 100)
    spend = services.spend(user=user, job_type=job_type).transaction
    from wallet.tests.admin_helpers import confirm_flow, start_flow

    client = logged_in(support)
    started = start_flow(
        client,
        reverse("admin:wallet_transaction_refund", args=[spend.pk]),
        {"mode": "partial", "amount": "7", "reason": "late"},
    )
    confirm_flow(client, started["Location"])

    index = client.get(reverse("admin:index")).content.decode()

    assert "None available" not in index
    assert f"Refunded 7 points of spend #{spend.pk}" in index
    assert Transaction.objects.filter(type=TransactionType.REFUND).count() == 1
