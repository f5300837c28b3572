"""The transfer fast path (two statements: `lock_for_transfer`, `book_transfer`) behaves
exactly like the general path: same rows, same audit chains, same refusals, same races.

`transfer` falls back to the general path (lock, then separate queries) under the same
locks whenever the case is not a plain success.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test import override_settings
from django.utils import timezone

from audit.hashing import compute_event_hash
from audit.models import AuditEvent
from divine_whispers.errors import IdempotencyKeyReused, InsufficientBalance, VelocityLimitExceeded
from wallet import services
from wallet.models import Transaction, Wallet, new_transfer_id
from wallet.services import _fast_path
from wallet.services._checks import fingerprint_of
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot, run_concurrently
from wallet.tests.services.test_spend_fast_path import _row_values

pytestmark = pytest.mark.django_db


def _transfer_and_collect(sender, recipient, **kwargs):
    result = services.transfer(sender=sender, recipient=recipient, amount=30, **kwargs)
    stored = [Transaction.objects.get(pk=row.pk) for row in (result.debit, result.credit)]
    events = [AuditEvent.objects.get(transaction_id=row.pk) for row in stored]
    return result, stored, events


def test_fast_path_writes_the_same_rows_as_the_general_path(user, other_user, fund, monkeypatch):
    third, fourth = UserFactory(), UserFactory()
    for target in (user, other_user, third, fourth):
        fund(target, 500)
    fast = _transfer_and_collect(user, other_user, reference_id="same", description="gift")
    monkeypatch.setattr(services.transfers, "_transfer_fast", lambda *args, **kwargs: None)
    general = _transfer_and_collect(third, fourth, reference_id="same", description="gift")

    (returned, rows_f, events_f), (_, rows_g, events_g) = fast, general
    for row_f, row_g in zip(rows_f, rows_g, strict=True):
        assert _row_values(row_f) == _row_values(row_g) | {"transfer_id": row_f.transfer_id}
    for event_f, event_g in zip(events_f, events_g, strict=True):
        assert _row_values(event_f) == _row_values(event_g)
        assert event_f.metadata == event_g.metadata == {}
    debit, credit = rows_f
    assert debit.request_fingerprint == fingerprint_of(
        op="transfer", to=other_user.pk, amount=30, description="gift"
    )
    assert credit.request_fingerprint == rows_g[1].request_fingerprint == ""
    assert debit.transfer_id == credit.transfer_id and debit.pk < credit.pk
    assert (debit.amount, debit.balance_after, credit.amount, credit.balance_after) == (
        -30,
        470,
        30,
        530,
    )
    # What the fast path returns is what it stored.
    for row, stored in zip((returned.debit, returned.credit), rows_f, strict=True):
        assert _row_values(row) == _row_values(stored)
        assert row.pk == stored.pk and not row._state.adding
    assert_ledger_consistent()


def test_fast_path_extends_both_audit_chains(user, other_user, fund):
    fund(user, 500)
    fund(other_user, 100)
    heads = {w.user_id: w.audit_head for w in Wallet.objects.filter(user__in=[user, other_user])}
    result = services.transfer(sender=user, recipient=other_user.pk, amount=40)

    out_event = AuditEvent.objects.get(transaction_id=result.debit.pk)
    in_event = AuditEvent.objects.get(transaction_id=result.credit.pk)
    assert out_event.prev_hash == heads[user.pk]
    assert in_event.prev_hash == heads[other_user.pk]
    assert Wallet.objects.get(user=user).audit_head == out_event.hash
    assert Wallet.objects.get(user=other_user).audit_head == in_event.hash
    for event in (out_event, in_event):
        assert compute_event_hash(event) == event.hash
        assert event.actor_id == user.pk
    assert (out_event.action, out_event.balance_before, out_event.balance_after) == (
        "wallet.transfer_out",
        500,
        460,
    )
    assert (in_event.action, in_event.balance_before, in_event.balance_after) == (
        "wallet.transfer_in",
        100,
        140,
    )
    assert_ledger_consistent()


def test_happy_path_transfer_is_three_queries(user, other_user, fund, django_assert_num_queries):
    """The recipient check, lock_for_transfer and book_transfer; the two others are the
    test's savepoint around them (outside a test, BEGIN and COMMIT take their place)."""
    fund(user, 500)
    fund(other_user, 1)
    with django_assert_num_queries(5) as captured:
        services.transfer(sender=user, recipient=other_user, amount=5, reference_id="t")
    sql = [q["sql"] or "" for q in captured.captured_queries]
    assert sql[1].startswith("SAVEPOINT") and sql[-1].startswith("RELEASE SAVEPOINT")


def test_new_transfer_rows_answer_job_without_a_query(
    user, other_user, fund, django_assert_num_queries
):
    fund(user, 500)
    fund(other_user, 1)
    result = services.transfer(sender=user, recipient=other_user, amount=5)
    with django_assert_num_queries(0):
        for row in (result.debit, result.credit):
            with pytest.raises(Transaction.job.RelatedObjectDoesNotExist):
                row.job  # noqa: B018


def test_replay_and_refusals_still_go_through_the_general_path(user, other_user, fund):
    fund(user, 60)
    fund(other_user, 1)
    first = services.transfer(sender=user, recipient=other_user, amount=50, reference_id="r")
    again = services.transfer(sender=user, recipient=other_user, amount=50, reference_id="r")
    assert again.replayed and again.debit.pk == first.debit.pk
    assert again.credit.pk == first.credit.pk
    with pytest.raises(IdempotencyKeyReused):
        services.transfer(sender=user, recipient=other_user, amount=5, reference_id="r")
    before = ledger_snapshot()
    with pytest.raises(InsufficientBalance):  # 10 points left
        services.transfer(sender=user, recipient=other_user, amount=11)
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert AuditEvent.objects.filter(action="wallet.transfer.rejected").count() == 1
    assert_ledger_consistent()


def test_first_transfer_to_a_user_without_wallet_creates_it(user, other_user, fund):
    fund(user, 100)
    assert not Wallet.objects.filter(user=other_user).exists()
    services.transfer(sender=user, recipient=other_user, amount=25)
    assert Wallet.objects.get(user=other_user).balance == 25
    assert_ledger_consistent()


@override_settings(WALLET_LARGE_AMOUNT_THRESHOLD=50)
def test_large_transfer_is_flagged(user, other_user, fund):
    fund(user, 500)
    fund(other_user, 1)
    result = services.transfer(sender=user, recipient=other_user, amount=60)
    actions = sorted(
        AuditEvent.objects.filter(transaction=result.debit).values_list("action", flat=True)
    )
    assert actions == ["suspicious.large_amount", "wallet.transfer_out"]
    assert_ledger_consistent()


@override_settings(WALLET_VELOCITY_LIMIT=2, WALLET_VELOCITY_WINDOW_SECONDS=60)
def test_velocity_guard_counts_the_ledger(user, other_user, fund, job_type):
    fund(user, 500)
    fund(other_user, 1)
    services.spend(user=user, job_type="fortune")
    services.transfer(sender=user, recipient=other_user, amount=5)
    before = ledger_snapshot()
    with pytest.raises(VelocityLimitExceeded):
        services.transfer(sender=user, recipient=other_user, amount=5)
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert AuditEvent.objects.filter(action="suspicious.velocity").count() == 1


# --- the manager's statements on their own ------------------------------------------------


def test_lock_for_transfer_locks_both_wallets_and_reserves_two_ids(user, other_user, fund):
    fund(user, 70)
    assert _fast_path.lock_for_transfer(user.pk, other_user.pk) is None  # no wallet yet
    fund(other_user, 5)
    lock = _fast_path.lock_for_transfer(user.pk, other_user.pk)
    other = _fast_path.lock_for_transfer(other_user.pk, user.pk)
    assert (lock.source.user_id, lock.source.balance) == (user.pk, 70)
    assert (lock.target.user_id, lock.target.balance) == (other_user.pk, 5)
    assert (other.source.user_id, other.target.user_id) == (other_user.pk, user.pk)
    assert lock.debit_id < lock.credit_id < other.debit_id < other.credit_id


@pytest.mark.parametrize(
    ("balance", "velocity_limit", "earlier_reference", "written"),
    [
        (70, 10, None, True),
        (29, 10, None, False),  # the balance does not cover it
        (70, 1, None, False),  # one transfer already in the window
        (70, 10, "m-1", False),  # the reference was used by an earlier transfer
    ],
)
def test_book_transfer_writes_everything_or_nothing(
    user, other_user, fund, balance, velocity_limit, earlier_reference, written
):
    fund(user, balance + 1)
    fund(other_user, 3)
    services.transfer(sender=user, recipient=other_user, amount=1, reference_id=earlier_reference)
    lock = _fast_path.lock_for_transfer(user.pk, other_user.pk)
    now = timezone.now()
    common = {"created_at": now, "transfer_id": new_transfer_id(), "reference_id": None}
    rows = [
        Transaction(
            pk=lock.debit_id,
            wallet=lock.source,
            user_id=user.pk,
            type="transfer_out",
            amount=-30,
            balance_after=lock.source.balance - 30,
            **{**common, "reference_id": "m-1"},
        ),
        Transaction(
            pk=lock.credit_id,
            wallet=lock.target,
            user_id=other_user.pk,
            type="transfer_in",
            amount=30,
            balance_after=lock.target.balance + 30,
            **common,
        ),
    ]
    before = ledger_snapshot()

    balances = _fast_path.book_transfer(
        lock.source,
        lock.target,
        amount=30,
        rows=rows,
        velocity_since=now - timedelta(seconds=60),
        velocity_limit=velocity_limit,
        reference_id="m-1",
        now=now,
    )

    if written:
        assert balances == (balance - 30, 4 + 30)
        assert Transaction.objects.filter(pk__in=[lock.debit_id, lock.credit_id]).count() == 2
    else:
        assert balances is None
        assert ledger_snapshot() == before


# --- failures and races -----------------------------------------------------------------------


def test_a_failing_insert_in_the_one_statement_rolls_back_everything(user, other_user, fund):
    fund(user, 100)
    fund(other_user, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION bench_fail() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'simulated audit insert failure'; END $$;"
            " CREATE TRIGGER bench_fail BEFORE INSERT ON audit_auditevent"
            " FOR EACH ROW EXECUTE FUNCTION bench_fail();"
        )
    before = ledger_snapshot()
    with pytest.raises(DatabaseError):
        services.transfer(sender=user, recipient=other_user, amount=10)
    assert ledger_snapshot() == before


@pytest.mark.django_db(transaction=True)
def test_racing_transfers_both_ways_never_deadlock_or_lose_points():
    alice, bob = UserFactory(), UserFactory()
    for target in (alice, bob):
        services.deposit(
            user=target, amount=1000, reference_id=f"seed-{target.pk}", actor=payment_account()
        )

    def move(i: int):
        sender, recipient = (alice, bob) if i % 2 else (bob, alice)
        return services.transfer(sender=sender, recipient=recipient, amount=7)

    with override_settings(WALLET_VELOCITY_LIMIT=1000):
        results = run_concurrently(move, 12)

    assert not [r for r in results if isinstance(r, BaseException)], results
    balances = {w.user_id: w.balance for w in Wallet.objects.filter(user__in=[alice, bob])}
    assert balances == {alice.pk: 1000, bob.pk: 1000}
    assert Transaction.objects.filter(type="transfer_out").count() == 12
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
@override_settings(WALLET_VELOCITY_LIMIT=5, WALLET_VELOCITY_WINDOW_SECONDS=60)
def test_racing_transfers_never_pass_the_velocity_limit():
    owner, friend = UserFactory(), UserFactory()
    for target in (owner, friend):
        services.deposit(
            user=target, amount=1000, reference_id=f"seed-{target.pk}", actor=payment_account()
        )

    results = run_concurrently(
        lambda i: services.transfer(sender=owner, recipient=friend, amount=3), 12
    )

    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 5
    assert all(isinstance(r, VelocityLimitExceeded) for r in refused), refused
    assert_ledger_consistent()
