"""Read queries for wallets and their ledger, and the purchases' scrape-time gauges.
Nothing here writes or locks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.db.models import (
    CharField,
    Count,
    F,
    FilteredRelation,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Abs, Coalesce
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from audit.models import AuditEvent
from divine_whispers.db.compiled import CompiledQuery
from divine_whispers.observability.metrics import gauge
from jobs.models import Job
from wallet.models import (
    ApprovalRequest,
    EventStatus,
    Lot,
    LotKind,
    ProviderEvent,
    Transaction,
    TransactionType,
    Wallet,
)
from wallet.selectors.reports import (  # noqa: F401 (the report, read from here)
    REPORT_AMOUNTS,
    REPORT_DATE_PATTERN,
    REPORT_FIGURES,
    REPORT_MAX_DAYS,
    DailyReport,
    ReportDay,
    daily_report,
    report_day_start,
    report_range_problem,
    report_timezone,
)

# The audit action of a reconcile_payments run (written by wallet/services/reconciliation.py).
RECONCILED_ACTION = "payments.reconciled"


def wallet_for_user(*, user_id: int) -> Wallet:
    """A user's wallet; a new user gets one with 0 points on first read."""
    return Wallet.objects.for_user(user_id)


EXPIRING_SHOWN = 10  # the balance answer lists this many upcoming expiry times at most


@dataclass(frozen=True)
class LotSplit:
    """A wallet's points by kind, and when its promotional points expire."""

    paid: int
    promotional: int
    expiring: list[dict[str, Any]]


def lot_split(*, wallet_id: int) -> LotSplit:
    """Paid and promotional points (they sum to the balance) and the next expiries,
    soonest first, one entry per expiry time (points past their expiry that the expiry
    job has not booked yet are listed first: they can no longer be spent)."""
    totals = (
        Lot.objects.filter(wallet_id=wallet_id, remaining__gt=0)
        .values_list("kind", "expires_at")
        .annotate(total=Sum("remaining"))
        .order_by(F("expires_at").asc(nulls_last=True))
    )
    return _split_of(totals)


def _split_of(totals: Iterable[tuple[str, datetime | None, int]]) -> LotSplit:
    """Fold (kind, expires_at, remaining points) groups, soonest expiry first."""
    paid = promotional = 0
    expiring: list[dict[str, Any]] = []
    for kind, expires_at, total in totals:
        if kind == LotKind.PAID:
            paid += total
            continue
        promotional += total
        if expires_at is None:
            continue
        if expiring and expiring[-1]["expires_at"] == expires_at:
            expiring[-1]["amount"] += total
        else:
            expiring.append({"amount": total, "expires_at": expires_at})
    return LotSplit(paid, promotional, expiring[:EXPIRING_SHOWN])


# The wallet and its live lots, grouped, in one statement (the join keeps only lots with
# points left, so it reads the `lot_live` partial index, not the wallet's whole history).
_BALANCE_OF_USER = CompiledQuery(
    lambda user_id: (
        Wallet.objects.filter(user_id=user_id)
        .annotate(live=FilteredRelation("lots", condition=Q(lots__remaining__gt=0)))
        .values_list("pk", "balance", "updated_at", "live__kind", "live__expires_at")
        .annotate(total=Sum("live__remaining"))
        .order_by(F("live__expires_at").asc(nulls_last=True))
    ),
    user_id=-(2**62) - 3,
)
_BALANCE_FIELDS = ["id", "user_id", "balance", "updated_at"]


def balance_of_user(*, user_id: int) -> tuple[Wallet, LotSplit]:
    """A user's wallet (a new user's is created with 0 points) and its paid/promotional
    split, read by one statement.

    One statement is one snapshot: read apart, a spend committed between the wallet read
    and the lots read would answer a `paid + promotional` that is not the `balance`. It is
    also the hottest read of the API, so one round trip, compiled once per process. The
    wallet carries only the fields the balance answer shows (the others load if read).
    """
    using = Wallet.objects.db
    rows = _BALANCE_OF_USER.rows(using=using, user_id=user_id)
    if not rows:
        Wallet.objects.ensure_for_users([user_id])
        rows = _BALANCE_OF_USER.rows(using=using, user_id=user_id)
    wallet_id, balance, updated_at = rows[0][:3]
    wallet = Wallet.from_db(using, _BALANCE_FIELDS, (wallet_id, user_id, balance, updated_at))
    return wallet, _split_of(row[3:] for row in rows if row[5])


@dataclass(frozen=True)
class ExpiringTotals:
    """Promotional points still unused whose expiry falls in the next 7 and 30 days."""

    next_7_days: int
    next_30_days: int


def expiring_totals(*, now: datetime | None = None) -> ExpiringTotals:
    """Over all wallets, the unused remainders of promotional lots expiring after `now`
    and at most 7 / 30 days later (lots already past their expiry are breakage, not
    counted; paid lots never expire). One aggregate over the `lot_expiring` index."""
    now = now or timezone.now()
    week, month = now + timedelta(days=7), now + timedelta(days=30)
    totals = Lot.objects.filter(
        kind=LotKind.PROMOTIONAL,
        remaining__gt=0,
        expires_at__isnull=False,
        expires_at__gt=now,
        expires_at__lte=month,
    ).aggregate(
        week=Coalesce(Sum("remaining", filter=Q(expires_at__lte=week)), 0),
        month=Coalesce(Sum("remaining"), 0),
    )
    return ExpiringTotals(next_7_days=totals["week"], next_30_days=totals["month"])


def transactions_for_user(
    *, user_id: int, txn_type: str | None = None, status: str | None = None
) -> QuerySet[Transaction]:
    """A user's history, newest first (ties broken by id for a stable cursor)."""
    queryset = Transaction.objects.filter(user_id=user_id).order_by("-created_at", "-id")
    if txn_type:
        queryset = queryset.filter(type=txn_type)
    if status:
        queryset = queryset.filter(status=status)
    return queryset


# --- Customer timeline (admin) ------------------------------------------------------------

# The summary's lines, in the order they add up to the balance (sign, name).
SUMMARY_LINES = (
    (+1, "deposited"),
    (+1, "purchased"),
    (+1, "granted"),
    (-1, "spent"),
    (+1, "refunded"),
    (+1, "transferred_in"),
    (-1, "transferred_out"),
    (+1, "adjusted_up"),
    (-1, "adjusted_down"),
    (-1, "clawed_back"),
    (+1, "clawback_reversed"),
    (-1, "expired"),
)


def customer_summary(*, wallet_id: int) -> dict[str, int]:
    """A wallet's successful ledger rows summed by kind, each total non-negative, plus
    `ledger_total` (the signed sum of all its rows: what its balance must equal).
    One aggregate query."""

    def total(condition: Q) -> Coalesce:
        return Coalesce(Sum(Abs("amount"), filter=condition), 0)

    adjustment = Q(type=TransactionType.ADJUSTMENT)
    return (
        Transaction.objects.successful()
        .filter(wallet_id=wallet_id)
        .aggregate(
            deposited=total(Q(type=TransactionType.DEPOSIT)),
            purchased=total(Q(type=TransactionType.PURCHASE)),
            clawed_back=total(Q(type=TransactionType.CLAWBACK)),
            clawback_reversed=total(Q(type=TransactionType.CLAWBACK_REVERSAL)),
            granted=total(Q(type=TransactionType.GRANT)),
            spent=total(Q(type=TransactionType.SPEND)),
            refunded=total(Q(type=TransactionType.REFUND)),
            transferred_in=total(Q(type=TransactionType.TRANSFER_IN)),
            transferred_out=total(Q(type=TransactionType.TRANSFER_OUT)),
            adjusted_up=total(adjustment & Q(amount__gt=0)),
            adjusted_down=total(adjustment & Q(amount__lt=0)),
            expired=total(Q(type=TransactionType.EXPIRY)),
            ledger_total=Coalesce(Sum("amount"), 0),
        )
    )


# Kinds of top-level timeline rows; the rank orders rows of one instant (ledger row first).
TIMELINE_KINDS = {"transaction": 2, "audit": 1}


@dataclass(frozen=True)
class TimelineFilter:
    """What the timeline shows: only money movements, only what staff did, one day."""

    money_only: bool = False
    staff_only: bool = False
    day: date | None = None
    tz: tzinfo | None = None


def customer_timeline(
    *, user_id: int, wallet_id: int, kinds: set[str], only: TimelineFilter | None = None
) -> QuerySet:
    """One row per ledger movement of the user, plus the audit events that name no ledger
    row (requests, refusals, denials), merged newest first by the database: a UNION of
    `(at, rank, kind, id)` rows, ready to paginate. Jobs and the audit events of a ledger
    row are not rows of their own: `timeline_folded` fetches them for a page's rows.
    `kinds` chooses the sources (what the staff member may see)."""
    only = only or TimelineFilter()
    sources = {
        "transaction": Transaction.objects.filter(user_id=user_id),
        "audit": AuditEvent.objects.filter(
            Q(wallet_id=wallet_id) | Q(actor_id=user_id, wallet__isnull=True),
            transaction__isnull=True,
        ),
    }
    if only.money_only:
        sources.pop("audit")
    parts = []
    for kind, queryset in sources.items():
        if kind not in kinds:
            continue
        if only.staff_only:
            queryset = queryset.filter(actor__is_staff=True)
        if only.day is not None:
            tz = only.tz or report_timezone()
            start = report_day_start(only.day, tz)
            end = report_day_start(only.day + timedelta(days=1), tz)
            queryset = queryset.filter(created_at__gte=start, created_at__lt=end)
        parts.append(
            queryset.order_by()
            .annotate(
                at=F("created_at"),
                rank=Value(TIMELINE_KINDS[kind], output_field=IntegerField()),
                kind=Value(kind, output_field=CharField()),
            )
            .values_list("at", "rank", "kind", "id")
        )
    if not parts:
        return Transaction.objects.none().values_list("created_at", "id", "type", "id")
    first, *others = parts
    return first.union(*others, all=True).order_by("-at", "-rank", "-id")


def timeline_folded(
    transaction_ids: list[int], *, with_jobs: bool, with_audit: bool
) -> tuple[dict[int, Job], dict[int, list[AuditEvent]]]:
    """The job bought by each ledger row and the audit events that name it (oldest
    first), for one page of the timeline: two queries."""
    jobs: dict[int, Job] = {}
    events: dict[int, list[AuditEvent]] = {}
    if with_jobs and transaction_ids:
        for job in Job.objects.filter(transaction_id__in=transaction_ids).select_related(
            "job_type"
        ):
            jobs[job.transaction_id] = job
    if with_audit and transaction_ids:
        for event in (
            AuditEvent.objects.filter(transaction_id__in=transaction_ids)
            .select_related("actor")
            .order_by("id")
        ):
            events.setdefault(event.transaction_id, []).append(event)
    return jobs, events


def recent_identical_adjustments(
    *, wallet_id: int, amount: int, minutes: int, now: datetime
) -> list[Transaction | ApprovalRequest]:
    """Adjustments of exactly `amount` booked on the wallet, and approval requests for it,
    in the last `minutes`: the admin warns before a second one (a double click, two
    staff members working the same ticket). Oldest first; two small indexed queries."""
    since = now - timedelta(minutes=minutes)
    booked = Transaction.objects.successful().filter(
        wallet_id=wallet_id, type=TransactionType.ADJUSTMENT, amount=amount, created_at__gte=since
    )
    asked = ApprovalRequest.objects.filter(
        wallet_id=wallet_id, amount=amount, created_at__gte=since
    ).exclude(transaction__isnull=False)
    found = [*booked.select_related("actor"), *asked.select_related("requested_by")]
    return sorted(found, key=lambda item: item.created_at)


# --- Refunds of spends (admin labels) ----------------------------------------------------


def refunded_totals(spend_ids: list[int]) -> dict[int, int]:
    """Points refunded so far (successful refunds) per spend id: one GROUP BY query."""
    if not spend_ids:
        return {}
    rows = (
        Transaction.objects.successful()
        .filter(type=TransactionType.REFUND, related_transaction_id__in=spend_ids)
        .order_by()
        .values_list("related_transaction_id")
        .annotate(total=Sum("amount"))
    )
    return {spend_id: int(total) for spend_id, total in rows}


def refunded_subquery(spend: str = "pk") -> Coalesce:
    """SQL: points refunded so far of the spend whose id is the column `spend`, for
    annotating a list (a job list filters on full vs partial refunds with it)."""
    refunds = (
        Transaction.objects.successful()
        .filter(type=TransactionType.REFUND, related_transaction_id=OuterRef(spend))
        .order_by()
        .values("related_transaction_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    return Coalesce(Subquery(refunds, output_field=IntegerField()), 0)


# --- Purchases: the provider's webhook inbox and the last reconciliation (scrape-time) ---


def payment_gauges() -> Iterator[GaugeMetricFamily]:
    """Registered with /metrics in WalletConfig.ready; read from the database at each scrape
    so every process reports the same figures. Every event status is reported, 0 included,
    so an alert never sees a series vanish."""
    events = gauge("provider_events", "Webhook events in the inbox, by status.", labels=["status"])
    counts = dict.fromkeys(EventStatus.values, 0)
    grouped = ProviderEvent.objects.order_by().values_list("status").annotate(n=Count("id"))
    counts.update(dict(grouped))
    for status, n in sorted(counts.items()):
        events.add_metric([status], n)
    yield events
    last = (
        AuditEvent.objects.filter(action=RECONCILED_ACTION)
        .order_by("-id")
        .values_list("metadata", "created_at")
        .first()
    )
    findings = len(last[0].get("findings", [])) if last else 0
    yield gauge(
        "payment_reconciliation_findings",
        "Findings of the last reconcile_payments run (credited but not paid, refunded but "
        "not clawed back, credits without a purchase).",
        value=findings,
    )
    yield gauge(
        "payment_reconciliation_timestamp_seconds",
        "Unix time of the last reconcile_payments run (0: never).",
        value=last[1].timestamp() if last else 0,
    )
