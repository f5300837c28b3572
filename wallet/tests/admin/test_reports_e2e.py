"""End to end in headless Chromium: finance opens the report (the chart is drawn, under the
admin's Content-Security-Policy), downloads its CSV, exports a filtered ledger list and opens a
customer's timeline. Screenshots go to artifacts/ for a person to look at.

Same browser set-up as test_admin_e2e.py (Debian's /usr/bin/chromium via Playwright).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission

from wallet import selectors, services
from wallet.models import Transaction
from wallet.tests.admin.test_admin_e2e import ARTIFACTS, PASSWORD, chromium  # noqa: F401 (fixture)
from wallet.tests.admin_helpers import staff_in_group
from wallet.tests.factories import JobTypeFactory, StaffFactory, UserFactory, payment_account
from wallet.tests.report_story import booked_at, random_story, total_balance

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FIRST, LAST = "2026-03-20", "2026-04-12"


@pytest.fixture
def finance_user():
    """A finance staff member (the transactional flush removed the migration's groups;
    staff_in_group recreates them from 0002's lists, so view_report is added here)."""
    user = staff_in_group("finance", "finance")
    user.groups.first().permissions.add(Permission.objects.get(codename="view_report"))
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def ledger():
    random_story(11, start=datetime(2026, 3, 22, tzinfo=UTC), days=18, operations=220)
    staff = StaffFactory(username="cashier")
    alice = UserFactory(username="alice", email="alice@example.com")
    tarot = JobTypeFactory(code="tarot", name="Three-card tarot", price=120)
    moment = datetime(2026, 4, 10, 9, tzinfo=UTC)
    with booked_at(moment):
        services.deposit(
            user=alice, amount=1000, reference_id="pay-alice-1", actor=payment_account()
        )
    with booked_at(moment + timedelta(minutes=5)):
        spend = services.spend(user=alice, job_type=tarot, reference_id="order-1").transaction
    with booked_at(moment + timedelta(minutes=30)):
        services.refund(spend_txn=spend, amount=60, reason="Reading a day late", actor=staff)
    return {"alice": alice, "closing": total_balance(), "rows": Transaction.objects.count()}


def _log_in(page, url: str) -> None:
    page.goto(f"{url}/admin/")
    page.fill("#id_username", "finance")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.locator("#site-name").wait_for()


def test_finance_report_chart_csv_export_and_timeline(live_server, chromium, finance_user, ledger):  # noqa: F811
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    days = (datetime.fromisoformat(LAST) - datetime.fromisoformat(FIRST)).days + 1
    alice_wallet = ledger["alice"].wallet.pk
    with chromium() as page:
        problems: list[str] = []
        page.on(
            "console",
            lambda m: problems.append(f"{m.text} {m.location}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "response",
            lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        _log_in(page, live_server.url)

        # The report: from the admin index, choose a range, see the chart and the table.
        page.get_by_role("link", name="Finance report").click()
        page.fill("#id_from_", FIRST)
        page.fill("#id_to", LAST)
        with page.expect_response(lambda r: "/admin/wallet/financereport/?" in r.url) as shown:
            page.get_by_role("button", name="Show").click()
        # The page runs under the admin's Content-Security-Policy (django-csp): scripts
        # from this site only, no inline script — and the chart is still drawn.
        policy = shown.value.headers["content-security-policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        )
        expect(page.locator("#report-table tbody tr")).to_have_count(days)
        page.wait_for_function(
            "() => window.Chart && Chart.getChart(document.getElementById('report-chart'))"
        )
        chart = page.evaluate(
            """() => { const c = Chart.getChart(document.getElementById('report-chart'));
                return {labels: c.data.labels.length, sets: c.data.datasets.length,
                        liability: c.data.datasets.at(-1).data.at(-1),
                        drawn: c.canvas.width > 0 && c.chartArea.width > 100}; }"""
        )
        assert chart == {"labels": days, "sets": 11, "liability": ledger["closing"], "drawn": True}
        # The liability's column: the cells are in the order of REPORT_FIGURES.
        totals = page.locator("#report-totals td")
        closing = totals.nth(selectors.REPORT_FIGURES.index("closing_liability"))
        expect(closing).to_have_text(f"{ledger['closing']:,}")
        page.screenshot(path=str(ARTIFACTS / "finance-report.png"), full_page=True)

        # CSV download of the same range.
        with page.expect_download() as download_info:
            page.locator("#report-csv").click()
        download = download_info.value
        assert download.suggested_filename == f"finance-report_{FIRST}_{LAST}.csv"
        report_rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))

        # Export: the ledger list filtered to refunds, all pages.
        page.goto(f"{live_server.url}/admin/wallet/transaction/")
        page.locator("#changelist-filter").get_by_role("link", name="Refund", exact=True).click()
        page.screenshot(path=str(ARTIFACTS / "ledger-list-export.png"), full_page=True)
        with page.expect_download() as export_info:
            page.get_by_role("link", name="Export CSV").click()
        export_rows = list(csv.reader(io.StringIO(Path(export_info.value.path()).read_text())))

        # The customer timeline, from the wallet page.
        page.goto(f"{live_server.url}/admin/wallet/wallet/{alice_wallet}/change/")
        page.get_by_role("link", name="Timeline").click()
        expect(page.locator("#summary-check")).to_contain_text("add up to the balance")
        expect(page.locator("#summary-balance td")).to_have_text("940")
        expect(page.locator("#summary-deposited td")).to_have_text("+1,000")
        expect(page.locator("#timeline tbody tr").first).to_contain_text("Refund")
        page.screenshot(path=str(ARTIFACTS / "customer-timeline.png"), full_page=True)

    # No script error, no CSP violation, no failed request (the browser's own favicon.ico
    # probe aside: the site has no favicon).
    problems = [text for text in problems if "/favicon.ico" not in text]
    assert problems == [], problems
    header = report_rows[0]
    assert len(report_rows) == 1 + days + 4  # days, total, opening liability and debt, timezone
    assert report_rows[1 + days][header.index("closing_liability")] == str(ledger["closing"])
    assert report_rows[1 + days][header.index("count")] == str(ledger["rows"])
    refunds = Transaction.objects.filter(type="refund").count()
    assert len(export_rows) == 1 + refunds
    assert {row[export_rows[0].index("type")] for row in export_rows[1:]} == {"refund"}
