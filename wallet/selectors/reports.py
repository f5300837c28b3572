"""The finance report (contract: "Reports"): every figure of every day aggregated by the
database from the ledger in one statement, and the rules of its date range. Read-only;
re-exported by wallet.selectors, where the rest of the wallet reads it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from divine_whispers.db.bounds import database_bounds
from wallet.models import (
    Allocation,
    Clawback,
    Lot,
    LotKind,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)

# --- Finance report (contract: "Reports") ------------------------------------------------

REPORT_MAX_DAYS = 366
# The per-day point totals, in the order the API, the admin table and the CSV show them.
REPORT_AMOUNTS = (
    "deposited",
    "purchased",
    "granted",
    "spent",
    "refunded",
    "transferred",
    "adjusted_up",
    "adjusted_down",
    "clawed_back",
    "clawback_reversed",
    "expired",
    "net",
)
# The closing liability, and its split: promotional points (granted, not yet spent or
# expired) and paid points (everything else: purchases, deposits, adjustments); and the
# debt all wallets owe at the day's end (clawbacks the balances could not cover).
REPORT_FIGURES = (
    *REPORT_AMOUNTS,
    "count",
    "closing_liability",
    "closing_paid",
    "closing_promotional",
    "debt",
)


@dataclass(frozen=True)
class ReportDay:
    """One day of the finance report; every figure is a whole number of points."""

    date: date
    deposited: int = 0
    purchased: int = 0
    granted: int = 0
    spent: int = 0
    refunded: int = 0
    transferred: int = 0
    adjusted_up: int = 0
    adjusted_down: int = 0
    clawed_back: int = 0
    clawback_reversed: int = 0
    expired: int = 0
    net: int = 0
    count: int = 0
    closing_liability: int = 0
    closing_promotional: int = 0
    debt: int = 0

    @property
    def closing_paid(self) -> int:
        return self.closing_liability - self.closing_promotional

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date, **{name: getattr(self, name) for name in REPORT_FIGURES}}


@dataclass(frozen=True)
class DailyReport:
    days: list[ReportDay]
    opening_liability: int
    timezone: str
    opening_promotional: int = 0
    opening_debt: int = 0

    @property
    def totals(self) -> dict[str, int]:
        """Sums of the day figures over the range; the liabilities are the range's ends."""
        totals = {name: sum(getattr(day, name) for day in self.days) for name in REPORT_AMOUNTS}
        totals["count"] = sum(day.count for day in self.days)
        totals["opening_liability"] = self.opening_liability
        last = self.days[-1] if self.days else None
        totals["closing_liability"] = last.closing_liability if last else self.opening_liability
        totals["closing_promotional"] = (
            last.closing_promotional if last else self.opening_promotional
        )
        totals["closing_paid"] = totals["closing_liability"] - totals["closing_promotional"]
        totals["opening_debt"] = self.opening_debt
        totals["debt"] = last.debt if last else self.opening_debt
        return totals


def report_day_start(day: date, tz: tzinfo) -> datetime:
    """The instant `day` begins in `tz` (a day is 23 or 25 hours long across DST)."""
    return datetime.combine(day, time.min, tzinfo=tz)


def daily_report(*, first: date, last: date, tz: tzinfo) -> DailyReport:
    """The finance report for the days `first`..`last` (inclusive) of time zone `tz`.

    Every figure is aggregated by the database from successful ledger rows, in one
    statement (so one snapshot): per day the point totals by type, `net` (the sum of
    all amounts: the change of all balances together) and `count`; and the closing
    liability from `balance_after`, not from summing amounts, so that the two ways of
    counting check each other (the tests reconcile them exactly). Each wallet's balance
    at a day's end is the `balance_after` of its latest row before that end; the
    liability moves, on each day, by how much those closing balances moved.
    Days without any row are filled in here, carrying the liability forward.
    """
    start, end = report_day_start(first, tz), report_day_start(last + timedelta(days=1), tz)
    # A year of ledger in one aggregate: the report's longer named bound, not a request's.
    with database_bounds("report"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(*_daily_report_sql(start, end, str(tz)))
        rows = cursor.fetchall()
    opening, opening_promotional, opening_debt = (int(value) for value in rows[0][:3])
    by_day = {_as_date(row[3]): row[4:] for row in rows if row[3] is not None}
    days, closing, promotional, debt = [], opening, opening_promotional, opening_debt
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        if day not in by_day:
            days.append(
                ReportDay(
                    day, closing_liability=closing, closing_promotional=promotional, debt=debt
                )
            )
            continue
        *amounts, count, liability_change, promotional_change, owed = (
            int(value or 0) for value in by_day[day]
        )
        closing += liability_change
        promotional += promotional_change
        entry = ReportDay(day, *amounts, count=count)
        debt += owed - entry.clawed_back  # the same derivation as verify_ledger's
        days.append(
            replace(entry, closing_liability=closing, closing_promotional=promotional, debt=debt)
        )
    return DailyReport(
        days=days,
        opening_liability=opening,
        timezone=str(tz),
        opening_promotional=opening_promotional,
        opening_debt=opening_debt,
    )


def _as_date(value: Any) -> date:
    """PostgreSQL returns a date; SQLite (`make run`) its ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


_T = {t.name: f"'{t.value}'" for t in TransactionType}  # SQL literals of the types


def _balance_before_sql(wallet: str) -> str:
    """SQL: the `balance_after` of the latest successful row of the wallet whose id is
    the (qualified!) column `wallet`, before the instant given as parameter (NULL when
    none): one probe of index txn_history."""
    return f"""(
        SELECT o.balance_after FROM {Transaction._meta.db_table} o
        WHERE o.wallet_id = {wallet} AND o.status = %s AND o.created_at < %s
        ORDER BY o.created_at DESC, o.id DESC LIMIT 1
    )"""


def _daily_report_sql(start: datetime, end: datetime, tzname: str) -> tuple[str, list]:
    """One statement, so one snapshot: a first row with the opening liability (the
    balances at `start`: each wallet's latest `balance_after` before it, one index probe
    per wallet), promotional points and debt, and no day; then per day with rows (or with
    debt recorded) the amounts of REPORT_AMOUNTS, the row count, the change of the
    closing liability, of the promotional points, and the points clawbacks owed.

    The liability change of a day is the sum, over its rows, of how much each row moved
    its wallet's `balance_after` from the wallet's previous row (for a wallet's first
    row in the range: from its balance at `start`). Per wallet and day this telescopes
    to "latest balance_after of the day − latest balance_after before the day": the
    day's move of the sum of all balances, read from `balance_after`, in one window pass
    and the same aggregate as the flows (no second sort by day).

    Debt is derived as verify_ledger checks it: the points every clawback owes (at its
    `clawback` row's instant, or its own when the balance covered none of it) minus the
    `clawback` rows booked. A clawback that took nothing books no row, hence the days of
    `owed_days` joined with those of the rows.

    Portable SQL (PostgreSQL, and SQLite for `make run`): a CTE, a window function and
    CASE, with the backend's own local-date expression (Django's, as for TruncDate).
    """
    table, wallets = Transaction._meta.db_table, Wallet._meta.db_table
    day_sql, day_params = connection.ops.datetime_cast_date_sql("t.created_at", (), tzname)
    promo_day_sql, promo_day_params = connection.ops.datetime_cast_date_sql("p.at", (), tzname)
    owed_day_sql, owed_day_params = connection.ops.datetime_cast_date_sql("d.at", (), tzname)
    lots, allocations = Lot._meta.db_table, Allocation._meta.db_table
    clawbacks = Clawback._meta.db_table
    sql = f"""
    WITH opening AS (  -- every wallet's balance at the range's start
        SELECT w.id AS wallet_id, COALESCE({_balance_before_sql("w.id")}, 0) AS balance
        FROM {wallets} w
    ),
    ranged AS (
        SELECT t.type, t.amount, {day_sql} AS day,
               t.balance_after - COALESCE(
                   LAG(t.balance_after) OVER (
                       PARTITION BY t.wallet_id ORDER BY t.created_at, t.id
                   ),
                   o.balance
               ) AS liability_change
        FROM {table} t JOIN opening o ON o.wallet_id = t.wallet_id
        WHERE t.status = %s AND t.created_at >= %s AND t.created_at < %s
    ),
    report AS (
        SELECT day,
            SUM(CASE WHEN type = {_T["DEPOSIT"]} THEN amount ELSE 0 END) AS deposited,
            SUM(CASE WHEN type = {_T["PURCHASE"]} THEN amount ELSE 0 END) AS purchased,
            SUM(CASE WHEN type = {_T["GRANT"]} THEN amount ELSE 0 END) AS granted,
            SUM(CASE WHEN type = {_T["SPEND"]} THEN -amount ELSE 0 END) AS spent,
            SUM(CASE WHEN type = {_T["REFUND"]} THEN amount ELSE 0 END) AS refunded,
            SUM(CASE WHEN type = {_T["TRANSFER_IN"]} THEN amount ELSE 0 END) AS transferred,
            SUM(CASE WHEN type = {_T["ADJUSTMENT"]} AND amount > 0 THEN amount ELSE 0 END)
                AS adjusted_up,
            SUM(CASE WHEN type = {_T["ADJUSTMENT"]} AND amount < 0 THEN -amount ELSE 0 END)
                AS adjusted_down,
            SUM(CASE WHEN type = {_T["CLAWBACK"]} THEN -amount ELSE 0 END) AS clawed_back,
            SUM(CASE WHEN type = {_T["CLAWBACK_REVERSAL"]} THEN amount ELSE 0 END)
                AS clawback_reversed,
            SUM(CASE WHEN type = {_T["EXPIRY"]} THEN -amount ELSE 0 END) AS expired,
            SUM(amount) AS net,
            COUNT(*) AS row_count,
            SUM(liability_change) AS liability_change
        FROM ranged
        GROUP BY day
    ),
    promotional AS (  -- every move of promotional points: lots booked, drawn, given back
        SELECT l.created_at AS at, l.amount AS change FROM {lots} l
        WHERE l.kind = '{LotKind.PROMOTIONAL.value}' AND NOT l.opening
        UNION ALL
        SELECT t.created_at, CASE WHEN t.amount < 0 THEN -a.amount ELSE a.amount END
        FROM {allocations} a JOIN {lots} l ON l.id = a.lot_id
        JOIN {table} t ON t.id = a.transaction_id
        WHERE l.kind = '{LotKind.PROMOTIONAL.value}' AND t.status = %s
    ),
    promotional_days AS (
        SELECT {promo_day_sql} AS day, SUM(change) AS promotional_change FROM promotional p
        WHERE p.at >= %s AND p.at < %s GROUP BY 1
    ),
    owed AS (  -- the points each clawback owes, at its row's instant (else its own)
        SELECT COALESCE(t.created_at, c.created_at) AS at, c.points
        FROM {clawbacks} c LEFT JOIN {table} t ON t.id = c.transaction_id
    ),
    owed_days AS (
        SELECT {owed_day_sql} AS day, SUM(points) AS owed FROM owed d
        WHERE d.at >= %s AND d.at < %s GROUP BY 1
    ),
    all_days AS (SELECT day FROM report UNION SELECT day FROM owed_days)
    SELECT (SELECT COALESCE(SUM(balance), 0) FROM opening) AS opening_liability,
           (SELECT COALESCE(SUM(change), 0) FROM promotional WHERE at < %s)
               AS opening_promotional,
           (SELECT COALESCE(SUM(points), 0) FROM owed WHERE at < %s)
               + (SELECT COALESCE(SUM(amount), 0) FROM {table}
                  WHERE type = {_T["CLAWBACK"]} AND status = %s AND created_at < %s)
               AS opening_debt,
           all_days.day, report.deposited, report.purchased, report.granted, report.spent,
           report.refunded, report.transferred, report.adjusted_up, report.adjusted_down,
           report.clawed_back, report.clawback_reversed, report.expired, report.net,
           report.row_count, report.liability_change,
           promotional_days.promotional_change, owed_days.owed
    FROM (SELECT 1) one LEFT JOIN all_days ON 1 = 1
    LEFT JOIN report ON report.day = all_days.day
    LEFT JOIN promotional_days ON promotional_days.day = all_days.day
    LEFT JOIN owed_days ON owed_days.day = all_days.day
    ORDER BY all_days.day
    """
    success = TransactionStatus.SUCCESS.value
    # Placeholders in the text's order: opening, ranged (day, status and bounds), the
    # promotional moves (status; day, bounds), the owed days (day, bounds), the
    # promotional and debt openings.
    return sql, [
        success,
        start,
        *day_params,
        success,
        start,
        end,
        success,
        *promo_day_params,
        start,
        end,
        *owed_day_params,
        start,
        end,
        start,
        start,
        success,
        start,
    ]


# Dates of the report: ISO `YYYY-MM-DD` in the years 2000–2999 (a range the schema can
# state as a pattern; any day of the ledger's life is in it, and a day's end never
# overflows a Python datetime whatever the time zone).
REPORT_DATE_PATTERN = r"^2[0-9]{3}-[0-9]{2}-[0-9]{2}$"


def report_range_problem(first: date, last: date) -> str | None:
    """Why `first`..`last` is not a valid report range, or None when it is."""
    if first > last:
        return "from must not be after to."
    if (last - first).days + 1 > REPORT_MAX_DAYS:
        return f"The range is at most {REPORT_MAX_DAYS} days (from and to included)."
    return None


def report_timezone() -> ZoneInfo:
    return ZoneInfo(settings.REPORT_TIMEZONE)
