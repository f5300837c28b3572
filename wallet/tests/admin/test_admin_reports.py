"""The back-office's finance report page, CSV exports of the ledger and audit lists, and
the customer timeline (Django test client; the browser test is test_reports_e2e.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from audit.backoffice.csv_export import csv_cell
from audit.models import AuditEvent
from divine_whispers.errors import InsufficientBalance
from wallet import services
from wallet.models import Transaction
from wallet.tests.admin_helpers import logged_in, staff_in_group, staff_with_permissions
from wallet.tests.factories import JobTypeFactory, StaffFactory, UserFactory, payment_account
from wallet.tests.report_story import booked_at, random_story

pytestmark = pytest.mark.django_db

REPORT = "/admin/wallet/financereport/"
REPORT_CSV = "/admin/wallet/financereport/csv/"
TXN_EXPORT = "/admin/wallet/transaction/export.csv"
AUDIT_EXPORT = "/admin/audit/auditevent/export.csv"


def csv_rows(response) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(content.decode())))


@pytest.fixture
def story():
    """alice: +1000, spend 120, refund 20, transfer 100 to bob, +30 / -10 adjustments."""
    staff = StaffFactory(username="cashier")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    tarot = JobTypeFactory(code="tarot", name="Three-card tarot", price=120)
    with booked_at(datetime(2026, 4, 2, 9, tzinfo=UTC)):
        services.deposit(user=alice, amount=1000, reference_id="pay-1", actor=payment_account())
        spend = services.spend(user=alice, job_type=tarot, reference_id="order-1").transaction
        services.refund(spend_txn=spend, amount=20, reason="late", actor=staff)
        services.transfer(sender=alice, recipient=bob, amount=100)
        services.adjust(user=alice, amount=30, reason="goodwill", actor=staff)
        services.adjust(user=alice, amount=-10, reason="=HYPERLINK(evil)", actor=staff)
    return {"alice": alice, "bob": bob, "spend": spend}


# --- Finance report page ------------------------------------------------------------


def test_finance_sees_the_report_in_the_index_and_support_does_not():
    finance = logged_in(staff_in_group("fin", "finance"))
    assert b'href="/admin/wallet/financereport/"' in finance.get("/admin/").content
    support = logged_in(staff_in_group("sup", "support"))
    assert b"financereport" not in support.get("/admin/").content
    assert support.get(REPORT).status_code == 403
    assert support.get(REPORT_CSV + "?from=2026-04-01&to=2026-04-03").status_code == 403


def test_report_page_shows_table_chart_data_and_csv_link(story):
    client = logged_in(staff_in_group("fin", "finance"))
    response = client.get(REPORT, {"from": "2026-04-01", "to": "2026-04-03"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="report-chart"' in html
    assert '<script id="report-data" type="application/json">' in html
    assert "chart.umd.min.js" in html and "finance_report.js" in html
    # No inline script anywhere on the page (the admin runs under a CSP).
    assert html.count("<script") == html.count("<script src=") + 1  # + the json_script
    chart = response.context["chart"]
    assert chart["labels"] == ["2026-04-01", "2026-04-02", "2026-04-03"]
    assert chart["series"]["deposited"] == [0, 1000, 0]
    assert chart["liability"] == [0, 920, 920]
    assert response.context["totals"]["cells"][0] == "1,000"
    assert "/admin/wallet/financereport/csv/?from=2026-04-01&amp;to=2026-04-03" in html


def test_report_page_default_range_is_the_last_30_days():
    client = logged_in(staff_in_group("fin", "finance"))
    response = client.get(REPORT)
    assert response.status_code == 200
    assert len(response.context["report"].days) == 30


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-04-03", "to": "2026-04-01"},
        {"from": "2025-01-01", "to": "2026-04-01"},
        {"from": "04/01/2026", "to": "2026-04-01"},
        {"from": "0001-01-01", "to": "0001-01-02"},
        {"to": "2026-04-01"},
    ],
)
def test_report_page_refuses_a_bad_range_with_a_message(params):
    client = logged_in(staff_in_group("fin", "finance"))
    response = client.get(REPORT, params)
    assert response.status_code == 400
    assert b"errornote" in response.content
    assert "report" not in response.context
    assert client.get(REPORT_CSV, params).status_code == 400


def test_report_csv_matches_the_api(story, client_for):
    finance = staff_in_group("fin", "finance")
    response = logged_in(finance).get(REPORT_CSV, {"from": "2026-04-01", "to": "2026-04-03"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "finance-report_2026-04-01_2026-04-03.csv" in response["Content-Disposition"]
    rows = csv_rows(response)
    api = client_for(finance).get(
        "/api/v1/admin/reports/daily", {"from": "2026-04-01", "to": "2026-04-03"}
    )
    header = rows[0]
    assert header[0] == "date"
    for row, day in zip(rows[1:4], api.json()["days"], strict=True):
        assert dict(zip(header, row, strict=True)) == {k: str(v) for k, v in day.items()}
    assert rows[4][0] == "total"
    assert rows[4][header.index("closing_liability")] == "920"


# --- Exports ------------------------------------------------------------------------


def test_ledger_export_follows_the_lists_filters_and_search(story):
    client = logged_in(staff_in_group("sup", "support"))
    # The list page links to the export with its own filters (without the page number).
    page = client.get("/admin/wallet/transaction/", {"type__exact": "adjustment", "p": "1"})
    assert page.context["export_csv_url"] == TXN_EXPORT + "?type__exact=adjustment"

    rows = csv_rows(client.get(TXN_EXPORT, {"type__exact": "adjustment"}))
    header, body = rows[0], rows[1:]
    assert header[:7] == ["id", "created_at", "user_id", "username", "wallet_id", "type", "amount"]
    assert sorted(row[header.index("amount")] for row in body) == ["-10", "30"]
    # A cell a spreadsheet would evaluate is defused; a negative number stays a number.
    reasons = {row[header.index("description")] for row in body}
    assert reasons == {"goodwill", "'=HYPERLINK(evil)"}

    searched = csv_rows(client.get(TXN_EXPORT, {"q": "bob"}))[1:]
    assert [row[header.index("type")] for row in searched] == ["transfer_in"]
    everything = csv_rows(client.get(TXN_EXPORT))[1:]
    assert len(everything) == Transaction.objects.count() == 7
    # Newest first, as the list.
    assert [int(r[0]) for r in everything] == sorted((int(r[0]) for r in everything), reverse=True)


def test_audit_export_and_each_export_is_audited(story):
    staff = staff_in_group("sup", "support")
    client = logged_in(staff)
    before = AuditEvent.objects.count()
    rows = csv_rows(client.get(AUDIT_EXPORT, {"action__exact": "wallet.refund"}))
    assert len(rows) == 2 and rows[1][rows[0].index("action")] == "wallet.refund"
    event = AuditEvent.objects.order_by("-id").first()
    assert AuditEvent.objects.count() == before + 1
    assert (event.action, event.actor_id) == ("admin.export_csv", staff.pk)
    assert event.metadata == {"model": "audit.auditevent", "query": "action__exact=wallet.refund"}


def test_export_needs_the_lists_view_permission(story):
    nobody = logged_in(staff_in_group("clerk"))  # staff, no group
    assert nobody.get(TXN_EXPORT).status_code == 403
    assert nobody.get(AUDIT_EXPORT).status_code == 403
    ledger_only = logged_in(staff_with_permissions("ledger", "wallet.view_transaction"))
    assert ledger_only.get(TXN_EXPORT).status_code == 200
    assert ledger_only.get(AUDIT_EXPORT).status_code == 403


def test_export_with_a_bad_filter_goes_back_to_the_list(story):
    client = logged_in(staff_in_group("sup", "support"))
    response = client.get(TXN_EXPORT, {"no_such_field": "1"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/wallet/transaction/?e=1"


def test_export_streams_through_a_server_side_cursor_in_chunks(story, settings):
    """Chunked reading, not one list: with a chunk size of 2 the 7 rows still arrive."""
    settings.EXPORT_CHUNK_SIZE = 2
    response = logged_in(staff_in_group("sup", "support")).get(TXN_EXPORT)
    assert response.streaming
    assert len(csv_rows(response)) == 1 + 7


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (-10, -10),
        (None, ""),
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-x", "'-x"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("plain", "plain"),
        ({"b": 1, "a": [1]}, '{"a": [1], "b": 1}'),
        (datetime(2026, 4, 2, 9, tzinfo=UTC), "2026-04-02T09:00:00+00:00"),
    ],
)
def test_csv_cells(value, cell):
    assert csv_cell(value) == cell


# --- Customer timeline --------------------------------------------------------------


def timeline_url(user) -> str:
    return f"/admin/wallet/wallet/{user.wallet.pk}/timeline/"


def test_timeline_has_one_row_per_movement_with_job_and_events_folded(story):
    client = logged_in(staff_in_group("sup", "support"))
    alice = story["alice"]
    wallet_page = client.get(f"/admin/wallet/wallet/{alice.wallet.pk}/change/")
    assert timeline_url(alice).encode() in wallet_page.content
    response = client.get(timeline_url(alice))
    assert response.status_code == 200
    rows = response.context["rows"]
    movements = [row for row in rows if row.kind == "transaction"]
    assert len(movements) == Transaction.objects.filter(user=alice).count() == 6
    # Every audit event of alice's wallet names a movement here: none is a row of its own.
    assert [row.kind for row in rows] == ["transaction"] * 6
    assert all(row.amount is not None for row in movements)
    spend = next(row for row in movements if row.title == "Spend")
    assert spend.amount == -120
    assert "Partially refunded (20 of 120)" in spend.details
    folded = " ".join(line["detail"] for line in spend.folded)
    assert "Three-card tarot · Partially refunded (20 of 120)" in folded
    assert "Spend · by alice" in folded
    transfer = next(row for row in movements if row.title == "Transfer out")
    assert f"to bob (user #{story['bob'].pk})" in transfer.details
    times = [row.at for row in rows]
    assert times == sorted(times, reverse=True)
    html = response.content.decode()
    assert "wallet.refund" not in html  # labels, not action codes
    assert ".000000" not in html and "+00:00" not in html


def test_timeline_events_without_a_movement_carry_no_amount(story):
    alice = story["alice"]
    staff = StaffFactory(username="fin-x")
    with pytest.raises(InsufficientBalance):
        services.adjust(user=alice, amount=-5000, reason="Claw back the bonus", actor=staff)
    client = logged_in(staff_in_group("sup", "support"))
    rows = client.get(timeline_url(alice)).context["rows"]
    refused = rows[0]
    assert (refused.kind, refused.title) == ("audit", "Adjustment refused (not enough points)")
    assert refused.amount is None and refused.balance_after is None
    assert "-5,000 points asked, nothing moved" in refused.details
    assert "reason: “Claw back the bonus”" in refused.details


def test_timeline_filters_money_staff_and_day(story):
    alice = story["alice"]
    client = logged_in(staff_in_group("sup", "support"))
    with pytest.raises(InsufficientBalance):
        services.adjust(user=alice, amount=-5000, reason="too much", actor=StaffFactory())
    everything = client.get(timeline_url(alice)).context["rows"]
    assert {row.kind for row in everything} == {"transaction", "audit"}
    money = client.get(timeline_url(alice), {"money": "1"}).context["rows"]
    assert {row.kind for row in money} == {"transaction"} and len(money) == 6
    staff = client.get(timeline_url(alice), {"staff": "1"}).context["rows"]
    # refund, two adjustments (by staff) and the refused adjustment; the deposit was booked
    # by the payment service account, which is not staff
    assert sorted(row.title for row in staff) == sorted(
        ["Refund", "Adjustment", "Adjustment", "Adjustment refused (not enough points)"]
    )
    that_day = client.get(timeline_url(alice), {"day": "2026-04-02", "money": "1"})
    assert len(that_day.context["rows"]) == 6
    assert b"p=" not in that_day.content or b"money=1&amp;day=" in that_day.content
    other_day = client.get(timeline_url(alice), {"day": "2026-04-03"})
    assert other_day.context["rows"] == []
    assert "Nothing matches these filters." in other_day.content.decode()
    bad = client.get(timeline_url(alice), {"day": "yesterday"})
    assert bad.status_code == 200 and "is not a date" in bad.content.decode()


def test_timeline_summary_adds_up_to_the_balance(story):
    client = logged_in(staff_in_group("sup", "support"))
    summary = client.get(timeline_url(story["alice"])).context["summary"]
    lines = {line["name"]: line["signed"] for line in summary["lines"]}
    assert lines == {
        "deposited": 1000,
        "purchased": 0,
        "granted": 0,
        "spent": -120,
        "refunded": 20,
        "transferred_in": 0,
        "transferred_out": -100,
        "adjusted_up": 30,
        "adjusted_down": -10,
        "clawed_back": 0,
        "clawback_reversed": 0,
        "expired": 0,
    }
    assert summary["sum"] == summary["balance"] == 820
    assert summary["agrees"] is True
    bob = client.get(timeline_url(story["bob"])).context["summary"]
    assert bob["sum"] == bob["balance"] == 100 and bob["agrees"]


def test_timeline_summary_adds_up_for_every_wallet_of_a_random_story():
    random_story(7, start=datetime(2026, 3, 1, tzinfo=UTC), days=5, operations=120)
    client = logged_in(staff_in_group("sup", "support"))
    for user in UserFactory._meta.model.objects.filter(username__startswith="story-7-"):
        response = client.get(timeline_url(user))
        summary = response.context["summary"]
        assert summary["agrees"] and summary["sum"] == user.wallet.balance
        assert (
            response.context["page"].paginator.count
            >= Transaction.objects.filter(user=user).count()
        )


def test_timeline_is_paginated(story):
    from wallet.admin.timeline import TIMELINE_PAGE_SIZE

    carol = UserFactory(username="carol")
    for number in range(TIMELINE_PAGE_SIZE + 1):
        services.deposit(user=carol, amount=1, reference_id=f"c{number}", actor=payment_account())
    client = logged_in(staff_in_group("sup", "support"))
    first = client.get(timeline_url(carol))
    total = first.context["page"].paginator.count
    assert total == TIMELINE_PAGE_SIZE + 1  # one row per deposit, each event folded inside
    assert len(first.context["rows"]) == TIMELINE_PAGE_SIZE
    second = client.get(timeline_url(carol), {"p": 2})
    seen = {row.url for row in first.context["rows"]} | {row.url for row in second.context["rows"]}
    assert len(seen) == total


def test_timeline_shows_only_what_the_staff_member_may_see(story):
    wallet_only = logged_in(staff_with_permissions("w", "wallet.view_wallet"))
    assert wallet_only.get(timeline_url(story["alice"])).status_code == 403
    ledger = logged_in(staff_with_permissions("l", "wallet.view_wallet", "wallet.view_transaction"))
    response = ledger.get(timeline_url(story["alice"]))
    rows = response.context["rows"]
    assert {row.kind for row in rows} == {"transaction"}
    assert all(row.folded == [] for row in rows)  # no job or audit permission: nothing inside
    assert ledger.get("/admin/wallet/wallet/999999/timeline/").status_code == 404


# --- Promotional points expiring (finance box) ---------------------------------------


def test_report_shows_promotional_points_expiring_in_7_and_30_days(django_assert_num_queries):
    """Counted: unused remainders expiring within now..now+7d / now..now+30d. Not counted:
    lots already past their expiry, paid lots, lots expiring later, spent points."""
    from datetime import timedelta

    from django.utils import timezone

    from wallet import selectors

    staff = StaffFactory(username="marketing")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    now = timezone.now()

    def grant(user, amount, expires_at, ref):
        services.grant(
            user=user,
            amount=amount,
            reason="promo",
            actor=staff,
            expires_at=expires_at,
            reference_id=ref,
        )

    # Already expired by now: granted ten days ago, expiring two days ago.
    with booked_at(now - timedelta(days=10)):
        grant(alice, 1000, now - timedelta(days=2), "g-expired")
    services.deposit(user=alice, amount=5000, reference_id="pay-a", actor=payment_account())
    grant(alice, 100, now + timedelta(days=3), "g-3d")  # partly spent below: 60 left
    grant(bob, 20, now + timedelta(days=6), "g-6d")
    grant(bob, 300, now + timedelta(days=20), "g-20d")
    grant(bob, 4000, now + timedelta(days=45), "g-45d")
    grant(bob, 7, None, "g-never")
    tarot = JobTypeFactory(code="tarot", name="Three-card tarot", price=40)
    services.spend(user=alice, job_type=tarot, reference_id="order-1")  # 40 from the 3-day lot

    with django_assert_num_queries(1):
        totals = selectors.expiring_totals()
    assert (totals.next_7_days, totals.next_30_days) == (80, 380)

    page = logged_in(staff_in_group("fin", "finance")).get(REPORT)
    assert page.status_code == 200
    html = page.content.decode()
    assert '<span id="expiring-7">80</span>' in html
    assert '<span id="expiring-30">380</span>' in html


def test_expiring_totals_are_zero_without_promotional_lots():
    services.deposit(user=UserFactory(), amount=900, reference_id="pay-z", actor=payment_account())
    page = logged_in(staff_in_group("fin", "finance")).get(REPORT)
    assert '<span id="expiring-7">0</span>' in page.content.decode()
    assert '<span id="expiring-30">0</span>' in page.content.decode()
