"""End to end in headless Chromium (1400 px), what support and finance staff read:

* the customer timeline: one row per ledger movement (its job and audit events folded
  inside), amounts only on booked rows, labels, the transfer's other party, filters;
* a partial refund reads "Partially refunded (30 of 120)" on the spend, the job page and
  the job list's filter;
* lists reached from a record name their filter in a removable chip;
* an adjustment that will be refused offers no button; a recent identical one warns;
* approvals: the home page's count, the default queue, a list that fits 1400 px, Back
  after approving shows the booked result, a decided request shows no expiry.

Same browser set-up as test_admin_e2e.py (its `chromium` fixture; Debian's Chromium,
never a downloaded one). Screenshots go to artifacts/e2e/, named `bo2-*`.
"""

from __future__ import annotations

import re

import pytest

from divine_whispers.errors import DomainError
from jobs.models import Job
from wallet import services
from wallet.models import ApprovalRequest, Transaction, TransactionType, Wallet
from wallet.tests.admin import test_admin_e2e as e2e
from wallet.tests.admin.test_admin_e2e import csp_violations, log_in, shoot, staff_member
from wallet.tests.factories import StaffFactory, UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The browser and the first story, shared with test_admin_e2e.py (pytest fixtures).
chromium = e2e.chromium
alice_spend = e2e.alice_spend
MICROSECONDS = re.compile(r"\d{2}:\d{2}:\d{2}\.\d+")


@pytest.fixture
def alice_story(alice_spend):
    """alice: +1000, spend 120 (tarot), 30 of it refunded, 100 sent to bob, and a
    +500,000 adjustment asked by fin-ann, refused to her as her own, approved by fin-ben."""
    cashier = StaffFactory(username="refunder")
    bob = UserFactory(username="bob", email="bob@example.com")
    services.refund(spend_txn=alice_spend, amount=30, reason="Late reading", actor=cashier)
    services.transfer(sender=alice_spend.user, recipient=bob, amount=100)
    ann, ben = staff_member("fin-ann", "finance"), staff_member("fin-ben", "finance")
    asked = services.adjust(
        user=alice_spend.user, amount=500_000, reason="Migration credit", actor=ann
    ).approval
    with pytest.raises(DomainError):
        services.approve_adjustment(approval=asked.pk, actor=ann)
    services.approve_adjustment(approval=asked.pk, actor=ben)
    return {"spend": alice_spend, "wallet": Wallet.objects.get(user=alice_spend.user)}


def test_support_reads_the_timeline_partial_refunds_and_filtered_lists(
    live_server, chromium, alice_story
):
    from playwright.sync_api import expect

    staff_member("support", "support")
    spend, wallet = alice_story["spend"], alice_story["wallet"]
    job = Job.objects.get(transaction=spend)
    base = live_server.url
    seen: dict[str, str] = {}

    with chromium() as page:
        violations = csp_violations(page)
        log_in(page, base, "support")
        page.goto(f"{base}/admin/wallet/wallet/{wallet.pk}/change/")
        page.get_by_role("link", name="Timeline", exact=True).click()

        # One row per movement (5) + the request and the refused self-decision (no amount).
        rows = page.locator("#timeline-rows tbody tr")
        expect(rows).to_have_count(7)
        expect(page.locator("#timeline-rows tbody tr.timeline-transaction")).to_have_count(5)
        amounts = page.locator("#timeline-rows tbody td.number:nth-child(4)").all_inner_texts()
        assert amounts.count("+500,000") == 1, amounts
        assert [text for text in amounts if text.strip()] == [
            "+500,000",
            "-100",
            "+30",
            "-120",
            "+1,000",
        ]
        adjustment = page.locator("#timeline-rows tbody tr.timeline-transaction").first
        expect(adjustment).to_contain_text("Approval granted and booked")
        expect(adjustment).to_contain_text("Large amount flagged")
        requested = page.locator("tr.timeline-audit", has_text="Approval requested (four eyes)")
        expect(requested).to_contain_text("+500,000 points asked, nothing moved")
        expect(page.locator("tr.timeline-audit", has_text="own request")).to_have_count(1)
        expect(page.locator("tr", has_text="Transfer out")).to_contain_text("to bob (user #")
        expect(page.locator("tr", has_text="Ledger #" + str(spend.pk))).to_contain_text(
            "Partially refunded (30 of 120)"
        )
        table = page.locator("#timeline-rows").inner_text()
        assert "approval.approved" not in table and "wallet.spend" not in table
        assert not MICROSECONDS.search(table), "times must not show microseconds"
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", table)
        shoot(page, "bo2-timeline-1-all")

        page.get_by_label("Money only").check()
        page.get_by_role("button", name="Filter").click()
        expect(rows).to_have_count(5)
        shoot(page, "bo2-timeline-2-money-only")
        page.get_by_label("Money only").uncheck()
        page.get_by_label("Staff actions").check()
        page.get_by_role("button", name="Filter").click()
        # refund, the adjustment, the request, the refused decision (the deposit was booked
        # by the payment service account, which is not staff)
        expect(rows).to_have_count(4)
        seen["staff"] = " | ".join(rows.all_inner_texts())
        page.get_by_label("Staff actions").uncheck()
        page.fill("#filter-day", "2001-01-01")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("#timeline-rows tbody")).to_contain_text(
            "Nothing matches these filters."
        )
        shoot(page, "bo2-timeline-3-other-day")
        page.get_by_role("link", name="Show everything").click()
        expect(rows).to_have_count(7)

        # The spend's job, reached from the timeline: partially refunded, not "Refunded".
        page.get_by_role("link", name=f"Job #{job.pk}", exact=True).click()
        expect(page.locator("#content h2").first).to_contain_text(
            f"Job #{job.pk} Three-card tarot (partially refunded (30 of 120))"
        )
        expect(page.locator(".field-status_label .readonly")).to_have_text(
            "Partially refunded (30 of 120)"
        )
        shoot(page, "bo2-job-partially-refunded")
        page.goto(f"{base}/admin/jobs/job/")
        page.locator("#changelist-filter").get_by_role("link", name="Partially refunded").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        expect(page.locator("#result_list tbody tr")).to_contain_text(
            "Partially refunded (30 of 120)"
        )
        page.locator("#changelist-filter").get_by_role("link", name="Refunded in full").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(0)
        shoot(page, "bo2-job-list-filter")

        # The spend's page says so too.
        page.goto(f"{base}/admin/wallet/transaction/{spend.pk}/change/")
        expect(page.locator(".field-refund_state_label .readonly")).to_have_text(
            "Partially refunded (30 of 120)"
        )
        expect(page.locator("#content h2").first).to_have_text(f"Spend #{spend.pk} (-120 points)")

        # From the wallet's page to "its" transactions: the list says what it shows.
        page.goto(f"{base}/admin/wallet/wallet/{wallet.pk}/change/")
        page.locator(".field-transactions_link a").click()
        chip = page.locator("#filter-chips .filter-chip")
        expect(chip).to_have_count(1)
        expect(chip).to_contain_text("Wallet: Wallet of alice")
        expect(page.locator("#result_list tbody tr")).to_have_count(5)
        shoot(page, "bo2-chip-1-filtered-ledger")
        chip.get_by_role("link", name=re.compile("Remove the filter")).click()
        expect(page.locator("#filter-chips")).to_have_count(0)
        assert page.url.endswith("/admin/wallet/transaction/")
        shoot(page, "bo2-chip-2-removed")
        page.goto(f"{base}/admin/wallet/wallet/{wallet.pk}/change/")
        page.locator(".field-audit_link a").click()
        expect(page.locator("#filter-chips .filter-chip")).to_contain_text("Wallet: Wallet of")
    assert violations == [], "the admin's Content-Security-Policy blocked something"
    print(f"timeline, staff actions only: {seen['staff']}")
    assert_ledger_consistent()


def test_finance_adjustments_refused_and_repeated_then_approvals(live_server, chromium):
    from playwright.sync_api import expect

    bob = UserFactory(username="bob", email="bob@example.com")
    services.deposit(user=bob, amount=74_945, reference_id="pay-bob-1", actor=payment_account())
    staff_member("fin-ann", "finance")
    staff_member("fin-ben", "finance")
    wallet_id = Wallet.objects.get(user=bob).pk
    base = live_server.url

    with chromium(pages=2) as (ann, ben):
        violations = csp_violations(ann) + csp_violations(ben)
        log_in(ann, base, "fin-ann")

        # Will be refused: no main button, no "(once approved)", no "→ -1 points".
        ann.goto(f"{base}/admin/wallet/wallet/{wallet_id}/adjust/")
        ann.fill("#id_amount", "-74946")
        ann.fill("#id_reason", "Claw back everything and one more")
        ann.get_by_role("button", name="Continue to confirmation").click()
        expect(ann.locator("#confirm-refusal")).to_contain_text("cannot be booked")
        expect(ann.locator("#confirm-button")).to_have_count(0)
        expect(ann.get_by_role("button", name=re.compile("Request approval"))).to_have_count(0)
        expect(ann.locator("#confirm-balance")).not_to_contain_text("once approved")
        expect(ann.locator("#confirm-balance")).not_to_contain_text("→")
        shoot(ann, "bo2-adjust-1-will-be-refused")
        ann.get_by_role("link", name="Change the amount").click()

        # Twice the same small adjustment: the second must be acknowledged.
        for attempt in (1, 2):
            ann.fill("#id_amount", "25")
            ann.fill("#id_reason", "Goodwill for ticket 88")
            ann.get_by_role("button", name="Continue to confirmation").click()
            if attempt == 2:
                expect(ann.locator("#confirm-warnings")).to_contain_text(
                    "The same adjustment (+25 points) was already made"
                )
                ann.get_by_role("button", name="Confirm: adjust by +25 points").click()
                expect(ann.locator("#confirm-error")).to_contain_text("Tick the box")
                shoot(ann, "bo2-adjust-2-recent-identical")
                ann.get_by_label("I have seen the recent adjustment above").check()
            ann.get_by_role("button", name="Confirm: adjust by +25 points").click()
            expect(ann.locator(".messagelist .success")).to_contain_text("New balance")
            ann.goto(f"{base}/admin/wallet/wallet/{wallet_id}/adjust/")

        # A large request, for ben.
        ann.fill("#id_amount", "500000")
        ann.fill("#id_reason", "Bulk migration credit")
        ann.get_by_role("button", name="Continue to confirmation").click()
        ann.get_by_role("button", name="Request approval of +500,000 points").click()
        expect(ann.locator("#approval-state")).to_contain_text("you cannot decide it yourself")

        log_in(ben, base, "fin-ben")
        count = ben.locator("#approvals-waiting")
        expect(count).to_have_text("1 approval request waits for your decision")
        shoot(ben, "bo2-approval-1-home-count")
        ben.get_by_role("link", name="Approval requests", exact=True).click()
        assert ben.url.endswith("?whose=to_decide")
        expect(ben.locator("#changelist-filter li.selected")).to_contain_text(
            ["All", "Waiting for my decision"]
        )
        expect(ben.locator("#result_list tbody tr")).to_have_count(1)
        ben.locator("#result_list tbody tr a").first.click()
        expect(ben.locator(".field-expires_at")).to_have_count(1)  # pending: it may expire
        ben.get_by_role("link", name="Approve…").click()
        expect(ben.locator("#confirm-balance")).to_have_text("74,995 → 574,995 points")
        ben.get_by_role("button", name="Approve and book +500,000 points").click()
        expect(ben.locator(".messagelist:not(#approval-state) .success")).to_contain_text(
            "New balance: 574,995 points"
        )
        expect(ben.locator(".field-expires_at")).to_have_count(0)  # decided: no expiry
        shoot(ben, "bo2-approval-2-approved")

        # Back: the approve page now tells the booked result, with no button.
        ben.go_back()
        expect(ben.locator("#confirm-already-booked")).to_contain_text(
            "This request was already approved by fin-ben"
        )
        expect(ben.locator("#confirm-already-booked")).to_contain_text(
            "leaving a balance of 574,995 points"
        )
        expect(ben.locator("#confirm-button")).to_have_count(0)
        expect(ben.locator("#content-main")).not_to_contain_text("→")
        shoot(ben, "bo2-approval-3-back-after-approving")

        # Every request at 1400 px: the table fits, the decided one shows no expiry.
        ben.goto(f"{base}/admin/wallet/approvalrequest/?whose=all")
        table, results = ben.locator("#result_list"), ben.locator("#changelist .results")
        assert table.bounding_box()["width"] <= results.bounding_box()["width"] + 1
        expect(ben.locator("#result_list tbody tr")).to_have_count(1)
        expect(ben.locator("#result_list tbody tr").first).not_to_contain_text("expires")
        expect(ben.locator("#result_list tbody tr").first).to_contain_text("Adjustment #")
        shoot(ben, "bo2-approval-4-list-1400px")
        ben.goto(f"{base}/admin/")
        expect(count).to_have_text("No approval request waits for your decision.")
    assert violations == [], "the admin's Content-Security-Policy blocked something"

    assert Transaction.objects.filter(type=TransactionType.ADJUSTMENT).count() == 3
    assert ApprovalRequest.objects.get().status == "approved"
    assert Wallet.objects.get(user=bob).balance == 574_995
    assert_ledger_consistent()
