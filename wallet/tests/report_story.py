"""Ledger stories at chosen instants, and the report's figures recomputed in Python.

Money only moves through the services; `booked_at` pins the services' clock so a row
lands on a chosen instant (day boundaries, DST changes). `expected_days` recomputes
every report figure from the ledger rows one by one, in Python, as the independent
reference the SQL report must match exactly.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from django.utils import timezone

from divine_whispers.errors import DomainError
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import (
    Allocation,
    Lot,
    LotKind,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)
from wallet.selectors import REPORT_AMOUNTS
from wallet.tests.factories import StaffFactory, UserFactory, payment_account


@contextmanager
def booked_at(moment: datetime) -> Iterator[None]:
    """Every `timezone.now()` inside the block returns `moment` (the services' clock)."""
    real = timezone.now
    timezone.now = lambda: moment
    try:
        yield
    finally:
        timezone.now = real


def random_story(
    seed: int, *, start: datetime, days: int, operations: int, users: int = 5
) -> list[Transaction]:
    """`operations` random deposits, grants, spends, refunds, transfers, adjustments and
    expiry runs (some
    refused by the rules, which is fine) spread over `days` days from `start`."""
    rng = random.Random(seed)
    staff = StaffFactory(username=f"story-staff-{seed}")
    people = [UserFactory(username=f"story-{seed}-{i}") for i in range(users)]
    reading = JobTypeFactory(code=f"story-{seed}", name="Story reading", price=35)
    moments = sorted(
        start + timedelta(seconds=rng.randrange(days * 86400)) for _ in range(operations)
    )
    for number, moment in enumerate(moments):
        who = rng.choice(people)
        # A refusal (e.g. not enough points) books nothing: fine for a story.
        with booked_at(moment), suppress(DomainError):
            _random_operation(rng, number, who, people, staff, reading, seed)
    return list(Transaction.objects.all())


def _random_operation(rng, number, who, people, staff, reading, seed) -> None:
    kind = rng.choice(
        ["deposit", "deposit", "grant", "spend", "spend", "refund", "transfer", "adjust", "expire"]
    )
    ref = f"story-{seed}-{number}"
    if kind == "grant":
        expires = timezone.now() + timedelta(hours=rng.randint(1, 72))
        services.grant(
            user=who,
            amount=rng.randint(1, 200),
            reason="story",
            actor=staff,
            expires_at=rng.choice([expires, None]),
            reference_id=ref,
        )
    elif kind == "expire":
        services.expire_points()
    elif kind == "deposit":
        services.deposit(
            user=who, amount=rng.randint(1, 500), reference_id=ref, actor=payment_account()
        )
    elif kind == "spend":
        services.spend(user=who, job_type=reading, reference_id=ref)
    elif kind == "refund":
        spend = (
            Transaction.objects.filter(type=TransactionType.SPEND, user=who).order_by("?").first()
        )
        if spend is not None:
            services.refund(spend_txn=spend, amount=rng.randint(1, 35), reason="story", actor=staff)
    elif kind == "transfer":
        other = rng.choice([p for p in people if p != who])
        services.transfer(sender=who, recipient=other, amount=rng.randint(1, 80))
    else:
        amount = rng.choice([-1, 1]) * rng.randint(1, 60)
        services.adjust(user=who, amount=amount, reason="story", actor=staff)


def local_date(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def expected_days(first: date, last: date, tz: tzinfo) -> dict[date, dict[str, Any]]:
    """Every figure of every day, recomputed row by row in Python from the ledger.

    The liability here is the running sum of amounts (not `balance_after`): the two
    independent ways of counting must agree.
    """
    rows = Transaction.objects.filter(status=TransactionStatus.SUCCESS).order_by("created_at")
    figures: dict[date, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    liability_before = 0
    for row in rows:
        day = local_date(row.created_at, tz)
        if day < first:
            liability_before += row.amount
            continue
        if day > last:
            continue
        f = figures[day]
        f["count"] += 1
        f["net"] += row.amount
        if row.type == TransactionType.DEPOSIT:
            f["deposited"] += row.amount
        elif row.type == TransactionType.GRANT:
            f["granted"] += row.amount
        elif row.type == TransactionType.EXPIRY:
            f["expired"] -= row.amount
        elif row.type == TransactionType.SPEND:
            f["spent"] -= row.amount
        elif row.type == TransactionType.REFUND:
            f["refunded"] += row.amount
        elif row.type == TransactionType.TRANSFER_IN:
            f["transferred"] += row.amount
        elif row.type == TransactionType.ADJUSTMENT and row.amount > 0:
            f["adjusted_up"] += row.amount
        elif row.type == TransactionType.ADJUSTMENT:
            f["adjusted_down"] -= row.amount
    promotional_before, promotional_moves = _promotional_moves(first, last, tz)
    result, liability, promotional = {}, liability_before, promotional_before
    day = first
    while day <= last:
        f = figures.get(day, {})
        liability += f.get("net", 0)
        promotional += promotional_moves.get(day, 0)
        result[day] = {name: f.get(name, 0) for name in (*REPORT_AMOUNTS, "count")}
        result[day]["closing_liability"] = liability
        result[day]["closing_promotional"] = promotional
        result[day]["closing_paid"] = liability - promotional
        day += timedelta(days=1)
    result["opening"] = liability_before  # type: ignore[index]
    return result


def _promotional_moves(first: date, last: date, tz: tzinfo) -> tuple[int, dict[date, int]]:
    """Promotional points before `first`, and their move per day, from the lots one by
    one: a promotional lot adds its amount when booked; each allocation of one takes
    (a debit) or gives back (a refund) its amount at its row's time."""
    moves: list[tuple[datetime, int]] = [
        (lot.created_at, lot.amount)
        for lot in Lot.objects.filter(kind=LotKind.PROMOTIONAL, opening=False)
    ]
    for allocation in Allocation.objects.filter(
        lot__kind=LotKind.PROMOTIONAL, transaction__status=TransactionStatus.SUCCESS
    ).select_related("transaction"):
        sign = -1 if allocation.transaction.amount < 0 else 1
        moves.append((allocation.transaction.created_at, sign * allocation.amount))
    before, per_day = 0, defaultdict(int)
    for moment, change in moves:
        day = local_date(moment, tz)
        if day < first:
            before += change
        elif day <= last:
            per_day[day] += change
    return before, per_day


def total_balance() -> int:
    return sum(Wallet.objects.values_list("balance", flat=True))
