"""The daily finance report over HTTP: permission, strict parameters, and figures that
reconcile exactly with the ledger (randomized stories, time zones, DST days)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wallet import selectors, services
from wallet.models import Transaction, TransactionStatus, TransactionType
from wallet.tests.api_helpers import error_of, staff_in
from wallet.tests.factories import JobTypeFactory, StaffFactory, UserFactory, payment_account
from wallet.tests.report_story import (
    booked_at,
    expected_days,
    purchase_paid,
    random_story,
    total_balance,
    total_debt,
)

pytestmark = pytest.mark.django_db

REPORT = "/api/v1/admin/reports/daily"
FIGURES = [*selectors.REPORT_FIGURES]


@pytest.fixture
def as_finance(client_for):
    return client_for(staff_in("finance", "fin"))


def get_report(client, first: str, last: str) -> dict:
    response = client.get(REPORT, {"from": first, "to": last})
    assert response.status_code == 200, response.content
    return response.json()


# --- Who may read it ----------------------------------------------------------------


def test_finance_group_holds_the_report_permission():
    from django.contrib.auth.models import Group

    finance = Group.objects.get(name="finance")
    assert finance.permissions.filter(codename="view_report").exists()
    support = Group.objects.get(name="support")
    assert not support.permissions.filter(codename="view_report").exists()


def test_support_staff_are_refused(client_for):
    response = client_for(staff_in("support", "sup")).get(
        REPORT, {"from": "2026-01-01", "to": "2026-01-02"}
    )
    assert error_of(response) == (403, "permission_denied")


def test_anonymous_is_refused(api_client):
    response = api_client.get(REPORT, {"from": "2026-01-01", "to": "2026-01-02"})
    assert error_of(response) == (401, "not_authenticated")


# --- Parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"from": "2026-01-01"},
        {"to": "2026-01-01"},
        {"from": "", "to": "2026-01-01"},
        {"from": "2026-1-01", "to": "2026-01-02"},
        {"from": "2026/01/01", "to": "2026-01-02"},
        {"from": "20260101", "to": "2026-01-02"},
        {"from": "2026-01-01T00:00", "to": "2026-01-02"},
        {"from": " 2026-01-01", "to": "2026-01-02"},
        {"from": "2026-02-30", "to": "2026-03-02"},
        {"from": "2026-13-01", "to": "2026-12-02"},
        {"from": "1999-12-31", "to": "2000-01-01"},
        {"from": "9999-12-30", "to": "9999-12-31"},
        {"from": "2026-01-01", "to": "today"},
        {"from": "2026-01-02", "to": "2026-01-01"},  # from after to
        {"from": "2026-01-01", "to": "2027-01-02"},  # 367 days
        {"from": "2023-12-31", "to": "2025-01-01"},  # 368 days, over a leap year
    ],
)
def test_bad_parameters_are_400_validation_error(as_finance, params):
    status, code = error_of(as_finance.get(REPORT, params))
    assert (status, code) == (400, "validation_error")


def test_366_days_is_the_longest_range(as_finance):
    body = get_report(as_finance, "2024-01-01", "2024-12-31")  # leap year: 366 days
    assert len(body["days"]) == 366
    assert body["days"][0]["date"] == "2024-01-01"
    assert body["days"][-1]["date"] == "2024-12-31"


def test_one_day_and_empty_ledger(as_finance):
    body = get_report(as_finance, "2026-05-01", "2026-05-01")
    assert body["timezone"] == "UTC"
    assert body["days"] == [{"date": "2026-05-01", **dict.fromkeys(FIGURES, 0)}]
    assert body["totals"] == {
        **dict.fromkeys(FIGURES, 0),
        "opening_liability": 0,
        "opening_debt": 0,
    }


def test_schema_states_the_parameters():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/admin/reports/daily"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    for name in ("from", "to"):
        assert params[name]["required"] is True
        assert params[name]["schema"]["format"] == "date"
        assert params[name]["schema"]["pattern"] == selectors.REPORT_DATE_PATTERN
    assert "366" in operation["description"]
    assert {"200", "400", "401", "403"} <= set(operation["responses"])


# --- Figures ------------------------------------------------------------------------


def test_one_day_of_every_kind_of_row(as_finance):
    staff = StaffFactory(username="cashier")
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    tarot = JobTypeFactory(code="tarot", price=120)
    with booked_at(datetime(2026, 4, 2, 9, 0, tzinfo=UTC)):
        services.deposit(user=alice, amount=1000, reference_id="pay-1", actor=payment_account())
        services.deposit(user=bob, amount=50, reference_id="pay-2", actor=payment_account())
        spend = services.spend(user=alice, job_type=tarot).transaction
        services.refund(spend_txn=spend, amount=20, reason="late", actor=staff)
        services.transfer(sender=alice, recipient=bob, amount=100)
        services.adjust(user=bob, amount=30, reason="goodwill", actor=staff)
        services.adjust(user=alice, amount=-10, reason="correction", actor=staff)
    # A failed row never counts (a pending row would be the same).
    Transaction.objects.create(
        wallet=spend.wallet,
        user=alice,
        type=TransactionType.DEPOSIT,
        amount=999,
        status=TransactionStatus.FAILED,
        balance_after=1999,
        reference_id="failed-pay",
        created_at=datetime(2026, 4, 2, 10, 0, tzinfo=UTC),
    )

    body = get_report(as_finance, "2026-04-01", "2026-04-03")
    empty_before, day, empty_after = body["days"]
    assert empty_before == {"date": "2026-04-01", **dict.fromkeys(FIGURES, 0)}
    assert day == {
        "date": "2026-04-02",
        "deposited": 1050,
        "purchased": 0,
        "granted": 0,
        "spent": 120,
        "refunded": 20,
        "transferred": 100,
        "adjusted_up": 30,
        "adjusted_down": 10,
        "clawed_back": 0,
        "clawback_reversed": 0,
        "expired": 0,
        "net": 1050 - 120 + 20 + 30 - 10,
        "count": 8,  # 2 deposits, spend, refund, 2 transfer legs, 2 adjustments
        "closing_liability": 970,
        "closing_paid": 970,
        "closing_promotional": 0,
        "debt": 0,
    }
    assert day["closing_liability"] == total_balance()
    assert empty_after == {
        "date": "2026-04-03",
        **dict.fromkeys(FIGURES, 0),
        "closing_liability": 970,
        "closing_paid": 970,
    }
    assert body["totals"]["closing_liability"] == 970
    assert body["totals"]["opening_liability"] == 0
    assert body["totals"]["count"] == 8


def _reconcile(body: dict, first: date, last: date, tz) -> None:
    """The report equals the row-by-row Python recomputation, and the books balance."""
    expected = expected_days(first, last, tz)
    previous = expected["opening"]
    assert body["totals"]["opening_liability"] == previous
    assert body["totals"]["opening_debt"] == expected["opening_debt"]
    for entry in body["days"]:
        day = date.fromisoformat(entry.pop("date"))
        assert entry == expected[day], day
        # Every day: the liability moves by exactly net, and net is the flows' balance.
        assert entry["closing_liability"] - previous == entry["net"], day
        assert entry["net"] == (
            entry["deposited"]
            + entry["purchased"]
            + entry["granted"]
            - entry["spent"]
            + entry["refunded"]
            + entry["adjusted_up"]
            - entry["adjusted_down"]
            - entry["clawed_back"]
            + entry["clawback_reversed"]
            - entry["expired"]
        )
        previous = entry["closing_liability"]
    for name in (*selectors.REPORT_AMOUNTS, "count"):
        assert body["totals"][name] == sum(
            expected[d][name] for d in expected if isinstance(d, date)
        )
    assert body["totals"]["closing_liability"] == previous
    assert body["totals"]["closing_promotional"] == body["days"][-1]["closing_promotional"]
    assert body["totals"]["debt"] == body["days"][-1]["debt"]
    for entry in body["days"]:
        assert entry["closing_paid"] + entry["closing_promotional"] == entry["closing_liability"]


@pytest.mark.parametrize(
    ("seed", "zone"),
    [(1, "UTC"), (2, "Europe/Berlin"), (3, "America/New_York"), (4, "Asia/Tokyo")],
)
def test_random_story_reconciles_exactly_with_the_ledger(as_finance, settings, seed, zone):
    settings.REPORT_TIMEZONE = zone
    tz = ZoneInfo(zone)
    # Ten days around the spring DST change of Europe (03-29) and after America's (03-08).
    random_story(seed, start=datetime(2026, 3, 24, tzinfo=UTC), days=10, operations=160)
    assert Transaction.objects.count() > 100

    # The whole story: the last closing liability is every balance added up.
    whole = get_report(as_finance, "2026-03-22", "2026-04-05")
    assert whole["timezone"] == zone
    _reconcile(whole, date(2026, 3, 22), date(2026, 4, 5), tz)
    assert whole["totals"]["closing_liability"] == total_balance()
    assert whole["totals"]["count"] == Transaction.objects.count()
    # … and the last debt every wallet's debt added up; the story did move them all.
    assert whole["totals"]["debt"] == total_debt()
    for name in ("purchased", "clawed_back", "clawback_reversed"):
        assert whole["totals"][name] > 0, name
    assert any(day["debt"] > 0 for day in whole["days"])

    # A window in the middle: the opening liability comes from the rows before it.
    middle = get_report(as_finance, "2026-03-27", "2026-03-30")
    _reconcile(middle, date(2026, 3, 27), date(2026, 3, 30), tz)
    assert middle["totals"]["opening_liability"] > 0


def test_purchase_clawback_debt_and_reversal_day_by_day(as_finance):
    """A purchase spent away, then refunded in full: the clawback takes nothing (a day
    with debt and no ledger row), the next deposit pays part of the debt, the reversal
    gives the points back and pays the rest."""
    alice, staff = UserFactory(username="alice"), StaffFactory(username="cashier")
    day = datetime(2026, 7, 1, 12, tzinfo=UTC)
    with booked_at(day):
        purchase = purchase_paid(alice, "buy-1", 100, 500)
        services.adjust(user=alice, amount=-100, reason="fee", actor=staff)
    with booked_at(day + timedelta(days=1)):
        services.claw_back(purchase_id=purchase.pk, kind="refund", source_id="re_1", money=500)
    with booked_at(day + timedelta(days=2)):
        services.deposit(user=alice, amount=30, reference_id="d1", actor=payment_account())
    with booked_at(day + timedelta(days=3)):
        services.reverse_clawback(source_id="re_1")

    body = get_report(as_finance, "2026-07-01", "2026-07-04")
    keys = ("purchased", "clawed_back", "clawback_reversed", "net", "count", "debt")
    assert [tuple(d[k] for k in keys) for d in body["days"]] == [
        (100, 0, 0, 0, 2, 0),
        (0, 0, 0, 0, 0, 100),  # all of it owed: no row, only debt
        (0, 30, 0, 0, 2, 70),  # the deposit pays 30 of it at once
        (0, 70, 100, 30, 2, 0),  # the reversal gives 100 back, 70 of them pay the rest
    ]
    assert [d["closing_liability"] for d in body["days"]] == [0, 0, 0, 30]
    assert body["totals"]["debt"] == 0 == total_debt()
    later = get_report(as_finance, "2026-07-03", "2026-07-04")
    assert later["totals"]["opening_debt"] == 100
    assert [d["debt"] for d in later["days"]] == [70, 0]
    _reconcile(body, date(2026, 7, 1), date(2026, 7, 4), UTC)


def test_day_boundaries_follow_the_report_timezone(as_finance, settings):
    alice = UserFactory(username="alice")
    instants = {
        "a": datetime(2026, 3, 1, 14, 59, 59, 999999, tzinfo=UTC),  # Tokyo 03-01 23:59:59.999999
        "b": datetime(2026, 3, 1, 15, 0, tzinfo=UTC),  # Tokyo 03-02 00:00
        "c": datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=UTC),  # UTC 03-01, last µs
        "d": datetime(2026, 3, 2, 0, 0, tzinfo=UTC),  # UTC 03-02 00:00
    }
    for number, (name, moment) in enumerate(instants.items(), start=1):
        with booked_at(moment):
            services.deposit(
                user=alice, amount=10**number, reference_id=name, actor=payment_account()
            )

    def deposited(zone: str) -> list[int]:
        settings.REPORT_TIMEZONE = zone
        body = get_report(as_finance, "2026-03-01", "2026-03-02")
        return [day["deposited"] for day in body["days"]]

    assert deposited("UTC") == [10 + 100 + 1000, 10000]
    assert deposited("Asia/Tokyo") == [10, 100 + 1000 + 10000]
    # Pacific/Kiritimati is UTC+14: all four instants are on its 03-02.
    assert deposited("Pacific/Kiritimati") == [0, 11110]


def test_a_dst_day_has_23_hours(as_finance, settings):
    """Europe/Berlin, 2026-03-29: 00:00 CET (23:00 UTC the day before) to 24:00 CEST
    (22:00 UTC); a row one microsecond either side belongs to the neighbour day."""
    settings.REPORT_TIMEZONE = "Europe/Berlin"
    alice = UserFactory(username="alice")
    moments = [
        datetime(2026, 3, 28, 22, 59, 59, 999999, tzinfo=UTC),  # 03-28
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC),  # 03-29 starts
        datetime(2026, 3, 29, 21, 59, 59, 999999, tzinfo=UTC),  # 03-29 ends
        datetime(2026, 3, 29, 22, 0, tzinfo=UTC),  # 03-30
    ]
    for number, moment in enumerate(moments, start=1):
        with booked_at(moment):
            services.deposit(
                user=alice, amount=number, reference_id=f"p{number}", actor=payment_account()
            )
    body = get_report(as_finance, "2026-03-28", "2026-03-30")
    assert [d["deposited"] for d in body["days"]] == [1, 2 + 3, 4]
    assert [d["closing_liability"] for d in body["days"]] == [1, 6, 10]


def test_opening_liability_uses_each_wallets_latest_row_before_the_range(as_finance):
    staff = StaffFactory(username="cashier")
    users = [UserFactory(username=f"u{i}") for i in range(3)]
    day = datetime(2026, 6, 1, 12, tzinfo=UTC)
    for offset, who in enumerate(users):
        with booked_at(day + timedelta(hours=offset)):
            services.deposit(
                user=who, amount=100, reference_id=f"a{offset}", actor=payment_account()
            )
        with booked_at(day + timedelta(days=1, hours=offset)):
            services.adjust(user=who, amount=-40, reason="fee", actor=staff)
    body = get_report(as_finance, "2026-06-02", "2026-06-03")
    assert body["totals"]["opening_liability"] == 300
    assert [d["closing_liability"] for d in body["days"]] == [180, 180]
    assert body["totals"]["net"] == -120


SQLITE_REPORT = """
from datetime import date, timedelta
from zoneinfo import ZoneInfo
from django.db import connection
from django.utils import timezone
from wallet import selectors
from wallet.tests.report_story import expected_days, total_balance
assert connection.vendor == "sqlite", connection.vendor
today = timezone.now().astimezone(ZoneInfo("Asia/Tokyo")).date()
first = today - timedelta(days=3)
report = selectors.daily_report(first=first, last=today, tz=ZoneInfo("Asia/Tokyo"))
expected = expected_days(first, today, ZoneInfo("Asia/Tokyo"))
for day in report.days:
    figures = day.as_dict()
    assert {k: v for k, v in figures.items() if k != "date"} == expected[day.date], day
assert report.totals["closing_liability"] == total_balance() > 0
assert report.totals["count"] > 0
print("sqlite-report-ok")
"""


def test_the_report_runs_on_sqlite_too(tmp_path):
    """`make run` serves the admin on SQLite: the same SQL must work there."""
    from wallet.tests.reliability.test_sqlite_default import run_on_seeded_sqlite

    assert "sqlite-report-ok" in run_on_seeded_sqlite(tmp_path, SQLITE_REPORT)
