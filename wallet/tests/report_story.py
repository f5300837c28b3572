"""Ledger stories at chosen instants, and the report's figures recomputed in Python.

Money only moves through the services; `booked_at` pins the services' clock so a row
lands on a chosen instant (day boundaries, DST changes). Purchases are credited by
`services.fulfil_purchase` with the payment as the provider would report it (no Stripe
needed: the report reads only our ledger), and clawed back or reversed by the services.
`expected_days` recomputes every report figure from the ledger rows one by one, in
Python, as the independent reference the SQL report must match exactly.
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
    Clawback,
    ClawbackKind,
    Lot,
    LotKind,
    PointPackage,
    Purchase,
    Transaction,
    TransactionStatus,
    TransactionType,
    Wallet,
)
from wallet.selectors import REPORT_AMOUNTS
from wallet.services import _provider
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
    """`operations` random deposits, purchases, grants, spends, refunds, transfers,
    adjustments, clawbacks (some leaving debt), clawback reversals and expiry runs (some
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


def purchase_paid(who: Any, ref: str, points: int, price: int) -> Purchase:
    """A purchase of `points` for `price` cents, credited as a succeeded payment would."""
    package, _ = PointPackage.objects.get_or_create(
        code=f"story-{points}-{price}", defaults={"name": "Story", "points": points, "price": price}
    )
    purchase = Purchase.objects.create(
        user=who, package=package, points=points, amount=price, currency="usd", reference_id=ref
    )
    payment = _provider.Payment(
        id=f"pi_{ref}", status="succeeded", amount=price, currency="usd",
        metadata={"purchase_id": str(purchase.pk)},
    )  # fmt: skip
    services.fulfil_purchase(payment=payment)
    return purchase


def _claw_back_some(rng: random.Random, ref: str, staff: Any) -> None:
    """A refund or dispute of part or all of a random credited purchase; half the time
    the buyer's balance is first adjusted away, so the clawback leaves debt."""
    purchase = Purchase.objects.filter(credit__isnull=False).order_by("?").first()
    if purchase is not None:
        balance = Wallet.objects.get(user_id=purchase.user_id).balance
        if balance > 0 and rng.random() < 0.5:
            services.adjust(user=purchase.user, amount=-balance, reason="story", actor=staff)
        services.claw_back(
            purchase_id=purchase.pk,
            kind=rng.choice([ClawbackKind.REFUND, ClawbackKind.DISPUTE]),
            source_id=ref,
            money=rng.randint(1, purchase.amount),
        )


def _random_operation(rng, number, who, people, staff, reading, seed) -> None:
    kind = rng.choice(
        ["deposit", "deposit", "purchase", "grant", "spend", "spend", "refund", "transfer",
         "adjust", "expire", "clawback", "reverse"]
    )  # fmt: skip
    ref = f"story-{seed}-{number}"
    if kind == "purchase":
        purchase_paid(who, ref, rng.randint(50, 400), rng.randint(100, 999))
    elif kind == "clawback":
        _claw_back_some(rng, ref, staff)
    elif kind == "reverse":
        standing = Clawback.objects.filter(reversed=False).order_by("?").first()
        if standing is not None:
            services.reverse_clawback(source_id=standing.source_id)
    elif kind == "grant":
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
        elif row.type == TransactionType.PURCHASE:
            f["purchased"] += row.amount
        elif row.type == TransactionType.CLAWBACK:
            f["clawed_back"] -= row.amount
        elif row.type == TransactionType.CLAWBACK_REVERSAL:
            f["clawback_reversed"] += row.amount
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
    debt_before, debt_moves = _debt_moves(first, last, tz)
    result, liability, promotional = {}, liability_before, promotional_before
    debt = debt_before
    day = first
    while day <= last:
        f = figures.get(day, {})
        liability += f.get("net", 0)
        promotional += promotional_moves.get(day, 0)
        debt += debt_moves.get(day, 0)
        result[day] = {name: f.get(name, 0) for name in (*REPORT_AMOUNTS, "count")}
        result[day]["closing_liability"] = liability
        result[day]["closing_promotional"] = promotional
        result[day]["closing_paid"] = liability - promotional
        result[day]["debt"] = debt
        day += timedelta(days=1)
    result["opening"] = liability_before  # type: ignore[index]
    result["opening_debt"] = debt_before  # type: ignore[index]
    return result


def _debt_moves(first: date, last: date, tz: tzinfo) -> tuple[int, dict[date, int]]:
    """Debt before `first`, and its move per day, one clawback and one row at a time: a
    clawback adds the points it owes (at its row's instant, or its own if it booked no
    row); every `clawback` row pays its points off."""
    moves: list[tuple[datetime, int]] = [
        (c.transaction.created_at if c.transaction else c.created_at, c.points)
        for c in Clawback.objects.select_related("transaction")
    ]
    moves += [
        (row.created_at, row.amount)
        for row in Transaction.objects.filter(
            type=TransactionType.CLAWBACK, status=TransactionStatus.SUCCESS
        )
    ]
    return _by_day(moves, first, last, tz)


def _by_day(
    moves: list[tuple[datetime, int]], first: date, last: date, tz: tzinfo
) -> tuple[int, dict[date, int]]:
    """The sum of the moves before `first`, and per day of `first`..`last`."""
    before, per_day = 0, defaultdict(int)
    for moment, change in moves:
        day = local_date(moment, tz)
        if day < first:
            before += change
        elif day <= last:
            per_day[day] += change
    return before, per_day


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
    return _by_day(moves, first, last, tz)


def total_balance() -> int:
    return sum(Wallet.objects.values_list("balance", flat=True))


def total_debt() -> int:
    return sum(Wallet.objects.values_list("debt", flat=True))
