"""The back-office's honest labels (Django test client): a partial refund reads as one on
the spend, the job page and the job list filter; approvals' decided pages and queue;
what a list reached from a record is filtered to; the words of refusals."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.tests.admin_helpers import logged_in, staff_in_group, staff_with_permissions
from wallet.tests.factories import StaffFactory, UserFactory, payment_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def partial():
    """alice spends 120 on a tarot reading; support refunds 30 of it."""
    cashier = StaffFactory(username="cashier")
    alice = UserFactory(username="alice")
    tarot = JobTypeFactory(code="tarot", name="Three-card tarot", price=120)
    services.deposit(user=alice, amount=1000, reference_id="pay-1", actor=payment_account())
    spend = services.spend(user=alice, job_type=tarot, reference_id="order-1").transaction
    services.refund(spend_txn=spend, amount=30, reason="late", actor=cashier)
    full = services.spend(user=alice, job_type=tarot, reference_id="order-2").transaction
    services.refund(spend_txn=full, reason="wrong reading", actor=cashier)
    return {"spend": spend, "full": full, "job": Job.objects.get(transaction=spend)}


def test_a_partial_refund_reads_as_partial_on_the_spend_and_the_job(partial):
    client = logged_in(staff_in_group("sup", "support"))
    spend_page = client.get(f"/admin/wallet/transaction/{partial['spend'].pk}/change/")
    html = spend_page.content.decode()
    assert "Partially refunded (30 of 120)" in html
    job = partial["job"]
    job_page = client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    assert f"Job #{job.pk} Three-card tarot (partially refunded (30 of 120))" in job_page
    assert "Partially refunded (30 of 120)" in job_page
    full_page = client.get(f"/admin/wallet/transaction/{partial['full'].pk}/change/")
    assert "Refunded in full (120 of 120)" in full_page.content.decode()


def test_the_job_list_filter_tells_full_from_partial_refunds(partial):
    client = logged_in(staff_in_group("sup", "support"))
    listing = client.get("/admin/jobs/job/").content.decode()
    assert "Partially refunded (30 of 120)" in listing
    assert "Refunded in full" in listing and "Partially refunded</a>" in listing
    partial_only = client.get("/admin/jobs/job/", {"status": "partial"})
    assert [job.pk for job in partial_only.context["cl"].result_list] == [partial["job"].pk]
    full_only = client.get("/admin/jobs/job/", {"status": "refunded"})
    assert [job.transaction_id for job in full_only.context["cl"].result_list] == [
        partial["full"].pk
    ]


# --- Approvals --------------------------------------------------------------------


@pytest.fixture
def approvals():
    """Two finance staff; ann asks for +500,000 (pending) and +20,000 (approved by ben)."""
    bob = UserFactory(username="bob")
    ann, ben = staff_in_group("fin-ann", "finance"), staff_in_group("fin-ben", "finance")
    services.deposit(user=bob, amount=74_945, reference_id="pay-bob", actor=payment_account())
    pending = services.adjust(user=bob, amount=500_000, reason="Bulk credit", actor=ann)
    decided = services.adjust(user=bob, amount=20_000, reason="Goodwill", actor=ann)
    services.approve_adjustment(approval=decided.approval.pk, actor=ben)
    return {"ann": ann, "ben": ben, "pending": pending.approval, "decided": decided.approval}


def test_an_approver_lands_on_the_requests_waiting_for_their_decision(approvals):
    ben = logged_in(approvals["ben"])
    landed = ben.get("/admin/wallet/approvalrequest/")
    assert landed.status_code == 302 and landed["Location"].endswith("?whose=to_decide")
    queue = ben.get(landed["Location"])
    assert [row.pk for row in queue.context["cl"].result_list] == [approvals["pending"].pk]
    everything = ben.get("/admin/wallet/approvalrequest/", {"whose": "all"})
    assert len(everything.context["cl"].result_list) == 2
    html = everything.content.decode()
    whose = html[html.index("By whose") :]
    assert "All requests" in whose and ">All</a>" not in whose[: whose.index("</ul>")]
    # Filtered from a wallet's page: no redirect.
    wallet_id = approvals["pending"].wallet_id
    from_wallet = ben.get("/admin/wallet/approvalrequest/", {"wallet__id__exact": wallet_id})
    assert from_wallet.status_code == 200


def test_the_home_page_counts_requests_waiting(approvals):
    home = logged_in(approvals["ben"]).get("/admin/").content.decode()
    assert "1 approval request waits for your decision" in home
    own = logged_in(approvals["ann"]).get("/admin/").content.decode()
    assert "No approval request waits for your decision." in own  # ann's own never count
    support = logged_in(staff_in_group("sup", "support")).get("/admin/").content.decode()
    assert "approvals-waiting" not in support


def test_a_decided_request_shows_its_result_not_a_booking_to_come(approvals):
    ben = logged_in(approvals["ben"])
    decided = approvals["decided"]
    decided.refresh_from_db()
    back = ben.get(f"/admin/wallet/approvalrequest/{decided.pk}/approve/").content.decode()
    assert "This request was already approved by fin-ben" in back
    assert "leaving a balance of 94,945 points" in back
    assert "→" not in back and 'id="confirm-button"' not in back
    page = ben.get(f"/admin/wallet/approvalrequest/{decided.pk}/change/").content.decode()
    assert "Expires at" not in page and "field-expires_at" not in page
    pending = ben.get(f"/admin/wallet/approvalrequest/{approvals['pending'].pk}/change/")
    assert "field-expires_at" in pending.content.decode()
    listing = ben.get("/admin/wallet/approvalrequest/", {"whose": "all"}).content.decode()
    assert listing.count("expires 20") == 1  # only the pending request
    assert f"Adjustment #{decided.transaction_id} (+20,000 points)" in listing


# --- Lists reached from a record --------------------------------------------------


def test_lists_reached_from_a_record_name_their_filter_in_a_removable_chip(partial):
    client = logged_in(staff_in_group("sup", "support"))
    spend = partial["spend"]
    wallet_id = spend.wallet_id
    ledger = client.get("/admin/wallet/transaction/", {"wallet__id__exact": wallet_id})
    html = ledger.content.decode()
    assert 'id="filter-chips"' in html
    assert "Wallet: <strong>Wallet of alice (" in html
    assert 'href="/admin/wallet/transaction/" class="filter-chip-remove"' in html
    audit = client.get("/admin/audit/auditevent/", {"transaction__id__exact": spend.pk}).content
    assert f"Transaction: <strong>Spend #{spend.pk} (-120 points)</strong>" in audit.decode()
    jobs = client.get("/admin/jobs/job/", {"user__id__exact": spend.user_id, "q": "x"}).content
    assert "User: <strong>alice</strong>" in jobs.decode()
    assert 'href="/admin/jobs/job/?q=x" class="filter-chip-remove"' in jobs.decode()
    missing = client.get("/admin/wallet/transaction/", {"wallet__id__exact": "999999"})
    assert "#999999 (not found)" in missing.content.decode()
    plain = client.get("/admin/wallet/transaction/").content.decode()
    assert 'id="filter-chips"' not in plain


# --- Words ------------------------------------------------------------------------


def test_the_report_403_names_the_real_permission_and_records_it():
    support = staff_in_group("sup", "support")
    page = logged_in(support).get("/admin/wallet/financereport/")
    html = page.content.decode()
    assert page.status_code == 403
    assert '<code id="missing-permission">wallet.view_report</code>' in html
    assert "view_financereport" not in html
    assert "add you to the group that holds it: <em>finance</em>" in html
    event = AuditEvent.objects.get(action="admin.permission_denied")
    assert event.metadata["permission"] == "wallet.view_report"


def test_a_403_no_group_can_lift_does_not_send_staff_to_a_group():
    page = logged_in(staff_in_group("fin", "finance")).get("/admin/wallet/wallet/add/")
    html = page.content.decode()
    assert page.status_code == 403
    assert "wallet.add_wallet" in html
    assert "No staff group holds this permission: only an administrator can do this." in html
    assert "ask an administrator to add you" not in html


def test_one_empty_marker_and_readable_labels(partial):
    client = logged_in(staff_in_group("sup", "support"))
    listing = client.get("/admin/wallet/transaction/").content.decode()
    assert '<td class="field-reference_short">—</td>' in listing  # the refunds have none
    assert ">-</td>" not in listing  # Django's own empty marker is replaced everywhere
    refund = partial["spend"].refunds.get()
    page = client.get(f"/admin/wallet/transaction/{refund.pk}/change/").content.decode()
    assert f"Refund #{refund.pk} (+30 points)" in page  # title and breadcrumb
    assert f"Spend #{partial['spend'].pk} (-120 points)" in page  # "refund of" link
    assert f"#{refund.pk} refund +30" not in page


# --- The audit event page ---------------------------------------------------------


def test_an_audit_event_links_its_previous_event_and_the_last_clean_verification(partial):
    from datetime import timedelta

    from django.utils import timezone

    from audit.models import LedgerVerification

    client = logged_in(staff_in_group("sup", "support"))
    refund_event = AuditEvent.objects.get(action="wallet.refund", transaction__amount=30)
    page = client.get(f"/admin/audit/auditevent/{refund_event.pk}/change/").content.decode()
    previous = AuditEvent.objects.filter(chain=refund_event.chain, id__lt=refund_event.pk).first()
    assert f'/admin/audit/auditevent/{previous.pk}/change/">Audit #{previous.pk} Spend' in page
    assert "No clean verify_ledger run recorded yet." in page
    LedgerVerification.objects.create(result="ok", finished_at=timezone.now())
    page = client.get(f"/admin/audit/auditevent/{refund_event.pk}/change/").content.decode()
    assert "✔ Chain verified up to here" in page
    first = AuditEvent.objects.filter(chain=refund_event.chain).order_by("id").first()
    first_page = client.get(f"/admin/audit/auditevent/{first.pk}/change/").content.decode()
    assert "none: the first event of its chain" in first_page
    LedgerVerification.objects.all().delete()
    LedgerVerification.objects.create(result="ok", finished_at=timezone.now() - timedelta(days=1))
    later = client.get(f"/admin/audit/auditevent/{refund_event.pk}/change/").content.decode()
    assert "not verified yet" in later


def test_audit_events_are_searchable_by_reason_and_exports_are_labelled(partial):
    client = logged_in(staff_in_group("sup", "support"))
    found = client.get("/admin/audit/auditevent/", {"q": "wrong reading"})
    assert [event.action for event in found.context["cl"].result_list] == ["wallet.refund"]
    client.get("/admin/audit/auditevent/export.csv")
    listing = client.get("/admin/audit/auditevent/", {"action": "admin.export_csv"})
    assert len(listing.context["cl"].result_list) == 1
    assert "List exported as CSV" in listing.content.decode()


# --- The job page -----------------------------------------------------------------


def test_the_job_page_offers_refund_pretty_json_and_short_references(partial):
    support = logged_in(staff_in_group("sup", "support"))
    job = partial["job"]
    Job.objects.filter(pk=job.pk).update(input={"question": "Will it rain?", "cards": 3})
    page = support.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    refund_url = f"/admin/wallet/transaction/{job.transaction_id}/refund/"
    assert f'href="{refund_url}" class="refund-link">Refund…' in page
    assert '<pre class="json">{\n  &quot;cards&quot;: 3,\n  &quot;question&quot;' in page
    full = Job.objects.get(transaction=partial["full"])
    done = support.get(f"/admin/jobs/job/{full.pk}/change/").content.decode()
    assert "refund-link" not in done  # nothing left to refund
    reader = logged_in(staff_with_permissions("r", "jobs.view_job", "wallet.view_wallet"))
    assert "refund-link" not in reader.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()
    services.deposit(
        user=partial["spend"].user, amount=5, reference_id="admin-" + "9" * 36, actor=None
    )
    listing = support.get("/admin/wallet/transaction/").content.decode()
    assert 'class="short-ref" title="admin-' + "9" * 36 + '">admin-9999…9999</span>' in listing
    assert 'class="copy-ref" data-copy="admin-' in listing
    assert "wallet/copy.js" in listing


def test_favicon_is_served():
    from django.test import Client

    response = Client().get("/favicon.ico", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[0][0].endswith("wallet/favicon.svg")


# --- The finance report ------------------------------------------------------------


def test_report_presets_no_future_days_monthly_rollup_and_iso_inputs():
    from datetime import date, timedelta

    from wallet.admin.reports import dwarfed, report_presets

    presets = {label: (first, last) for label, first, last in report_presets(date(2026, 5, 17))}
    assert presets["This month"] == (date(2026, 5, 1), date(2026, 5, 17))
    assert presets["Last month"] == (date(2026, 4, 1), date(2026, 4, 30))
    assert presets["This quarter"] == (date(2026, 4, 1), date(2026, 5, 17))
    assert presets["Last quarter"] == (date(2026, 1, 1), date(2026, 3, 31))
    assert dwarfed({"deposited": [10, 12, 9, 5000]}) and not dwarfed({"spent": [10, 12, 9, 15]})

    client = logged_in(staff_in_group("fin", "finance"))
    first = date.today() - timedelta(days=100)
    ahead = {"from": first.isoformat(), "to": (date.today() + timedelta(days=200)).isoformat()}
    page = client.get("/admin/wallet/financereport/", ahead)
    html = page.content.decode()
    assert page.status_code == 200
    assert "Days after today" in html
    days = page.context["report"].days
    assert days[-1].date <= date.today()
    assert page.context["months"][0]["month"] == f"{first.year}-{first.month:02d}"
    assert 'id="report-months"' in html and 'id="report-totals-top"' in html
    assert 'placeholder="YYYY-MM-DD"' in html and 'type="date"' not in html
    assert 'id="report-presets"' in html and "Last quarter</a>" in html
    short = client.get("/admin/wallet/financereport/", {"from": "2026-04-01", "to": "2026-04-30"})
    assert short.context["months"] == []
