"""The spend fast path (two statements: `lock_for_spend`, `book_spend`) behaves exactly
like the general path: same rows, same audit chain, same refusals, same races.

The general path is the one every other operation uses (lock, then separate queries);
`spend` falls back to it under the same lock whenever the case is not a plain success.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test import override_settings
from django.utils import timezone

from audit.hashing import compute_event_hash
from audit.models import AuditEvent
from divine_whispers.errors import (
    IdempotencyKeyReused,
    InactiveJobType,
    InsufficientBalance,
    PriceMismatch,
    ValidationFailed,
    VelocityLimitExceeded,
)
from jobs.models import Job
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.services import _fast_path
from wallet.tests.factories import UserFactory, payment_account
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot, run_concurrently

pytestmark = pytest.mark.django_db

# Fields that legitimately differ between two spends of two users.
VARYING = {
    "id",
    "wallet",
    "wallet_id",
    "user",
    "user_id",
    "actor",
    "actor_id",
    "created_at",
    "updated_at",
    "transaction",
    "transaction_id",
    "chain",
    "hash",
    "prev_hash",
    "metadata",
    "request_fingerprint",
}


def _row_values(instance) -> dict:
    return {
        f.attname: getattr(instance, f.attname)
        for f in instance._meta.concrete_fields
        if f.attname not in VARYING and f.name not in VARYING
    }


def _spend_and_collect(user, **kwargs):
    txn, job = services.spend(user=user, job_type="fortune", **kwargs)
    stored_txn = Transaction.objects.get(pk=txn.pk)
    stored_job = Job.objects.get(pk=job.pk)
    event = AuditEvent.objects.get(transaction=stored_txn)
    return txn, job, stored_txn, stored_job, event


def test_fast_path_writes_the_same_rows_as_the_general_path(
    user, other_user, fund, job_type, monkeypatch
):
    fund(user, 500)
    fund(other_user, 500)
    fast = _spend_and_collect(user, reference_id="same-ref", job_input={"q": "love?"})
    monkeypatch.setattr(services.spending, "_spend_fast", lambda *args, **kwargs: None)
    general = _spend_and_collect(other_user, reference_id="same-ref", job_input={"q": "love?"})

    returned, job, txn_f, job_f, event_f = fast
    _, _, txn_g, job_g, event_g = general
    assert _row_values(txn_f) == _row_values(txn_g)
    assert _row_values(job_f) == _row_values(job_g)
    assert _row_values(event_f) == _row_values(event_g)
    assert txn_f.request_fingerprint == txn_g.request_fingerprint
    assert event_f.metadata == {"job_id": job_f.pk, "job_type": "fortune"}
    assert event_g.metadata == {"job_id": job_g.pk, "job_type": "fortune"}
    # What the fast path returns is what it stored.
    assert _row_values(returned) == _row_values(txn_f)
    assert _row_values(job) == _row_values(job_f)
    assert (returned.pk, job.pk, job.transaction_id) == (txn_f.pk, job_f.pk, txn_f.pk)
    assert not returned._state.adding and not job._state.adding
    assert_ledger_consistent()


def test_fast_path_extends_the_wallets_audit_chain(user, fund, job_type):
    fund(user, 500)
    head_before = Wallet.objects.get(user=user).audit_head
    txn, _ = services.spend(user=user, job_type="fortune")
    txn2, _ = services.spend(user=user.pk, job_type="fortune")

    first = AuditEvent.objects.get(transaction_id=txn.pk)
    second = AuditEvent.objects.get(transaction_id=txn2.pk)
    assert first.prev_hash == head_before
    assert second.prev_hash == first.hash
    assert Wallet.objects.get(user=user).audit_head == second.hash
    for event in (first, second):
        assert compute_event_hash(event) == event.hash  # the stored row verifies
        assert (event.action, event.actor_id, event.wallet_id) == (
            "wallet.spend",
            user.pk,
            txn.wallet_id,
        )
    assert (first.balance_before, first.balance_after) == (500, 450)
    assert (second.balance_before, second.balance_after) == (450, 400)


def test_happy_path_spend_is_two_queries(user, fund, job_type, django_assert_num_queries):
    """lock_for_spend + book_spend; the two others are the test's savepoint around them
    (outside a test, BEGIN and COMMIT take their place)."""
    fund(user, 500)
    with django_assert_num_queries(4) as captured:
        services.spend(user=user, job_type="fortune", reference_id="r-1")
    sql = [q["sql"] or "" for q in captured.captured_queries]
    assert sql[0].startswith("SAVEPOINT") and sql[-1].startswith("RELEASE SAVEPOINT")


def test_replay_and_refusals_still_go_through_the_general_path(user, fund, job_type):
    fund(user, 60)
    first, _ = services.spend(user=user, job_type="fortune", reference_id="r-1")
    again = services.spend(user=user, job_type="fortune", reference_id="r-1")
    assert again.replayed and again.transaction.pk == first.pk
    with pytest.raises(IdempotencyKeyReused):
        services.spend(user=user, job_type="fortune", reference_id="r-1", expected_price=50)
    before = ledger_snapshot()
    with pytest.raises(InsufficientBalance):  # 10 points left
        services.spend(user=user, job_type="fortune")
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert AuditEvent.objects.filter(action="wallet.spend.rejected").count() == 1
    assert_ledger_consistent()


def test_job_type_errors_are_raised_from_the_locked_read_too(user, fund, job_type):
    fund(user, 500)  # the wallet exists, so the fast path reads the job type
    JobTypeFactory(code="retired", price=5, active=False)
    before = ledger_snapshot()
    with pytest.raises(InactiveJobType):
        services.spend(user=user, job_type="retired")
    with pytest.raises(PriceMismatch):
        services.spend(user=user, job_type="fortune", expected_price=49)
    with pytest.raises(ValidationFailed):
        services.spend(user=user, job_type="fortune", expected_price=True)
    with pytest.raises(ValidationFailed):
        services.spend(user=user, job_type="no-such-type")
    assert ledger_snapshot() == before


def test_first_spend_of_a_user_without_wallet_is_refused_and_audited(user, job_type):
    with pytest.raises(InsufficientBalance):
        services.spend(user=user, job_type="fortune")
    assert Wallet.objects.get(user=user).balance == 0
    assert AuditEvent.objects.filter(action="wallet.spend.rejected").count() == 1


@override_settings(WALLET_LARGE_AMOUNT_THRESHOLD=50)
def test_large_spend_is_flagged(user, fund, job_type):
    fund(user, 40_000)
    txn, _ = services.spend(user=user, job_type="fortune")
    actions = sorted(AuditEvent.objects.filter(transaction=txn).values_list("action", flat=True))
    assert actions == ["suspicious.large_amount", "wallet.spend"]
    assert_ledger_consistent()


@override_settings(WALLET_VELOCITY_LIMIT=2, WALLET_VELOCITY_WINDOW_SECONDS=60)
def test_velocity_guard_counts_the_ledger(user, other_user, fund, job_type):
    fund(user, 500)
    services.spend(user=user, job_type="fortune")
    services.transfer(sender=user, recipient=other_user, amount=5)
    before = ledger_snapshot()
    with pytest.raises(VelocityLimitExceeded):
        services.spend(user=user, job_type="fortune")
    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert AuditEvent.objects.filter(action="suspicious.velocity").count() == 1


# --- the manager's statements on their own ------------------------------------------------


def _locked(user):
    lock = _fast_path.lock_for_spend(user.pk, "fortune")
    assert lock is not None
    return lock


def _rows_for(lock, user, now):
    row = Transaction(
        pk=lock.transaction_id,
        wallet=lock.wallet,
        user_id=user.pk,
        type="spend",
        amount=-50,
        balance_after=lock.wallet.balance - 50,
        reference_id="m-1",
        created_at=now,
    )
    job = Job(
        pk=lock.job_id,
        user_id=user.pk,
        job_type=lock.job_type,
        transaction=row,
        points_used=50,
        created_at=now,
        updated_at=now,
    )
    return [row, job]


def test_lock_for_spend_reads_wallet_job_type_and_fresh_ids(user, fund, job_type):
    fund(user, 70)
    lock = _locked(user)
    other = _locked(user)
    assert (lock.wallet.balance, lock.job_type.pk, lock.job_type.price) == (70, job_type.pk, 50)
    assert lock.wallet.user_id == user.pk
    assert other.transaction_id > lock.transaction_id and other.job_id > lock.job_id
    assert _fast_path.lock_for_spend(user.pk, "unknown") is None
    assert _fast_path.lock_for_spend(10**9, "fortune") is None


@pytest.mark.parametrize(
    ("balance", "velocity_limit", "earlier_reference", "written"),
    [
        (70, 10, None, True),
        (49, 10, None, False),  # the balance does not cover it
        (70, 1, None, False),  # one spend already in the window
        (70, 10, "m-1", False),  # the reference was used by an earlier spend
    ],
)
def test_book_spend_writes_everything_or_nothing(
    user, fund, job_type, balance, velocity_limit, earlier_reference, written
):
    fund(user, balance + 50)
    services.spend(user=user, job_type="fortune", reference_id=earlier_reference)
    lock = _locked(user)
    now = timezone.now()
    before = ledger_snapshot()

    new_balance = _fast_path.book_spend(
        lock.wallet,
        amount=50,
        rows=_rows_for(lock, user, now),
        velocity_since=now - timedelta(seconds=60),
        velocity_limit=velocity_limit,
        reference_id="m-1",
        now=now,
    )

    if written:
        assert new_balance == balance - 50
        assert Transaction.objects.filter(pk=lock.transaction_id).exists()
        assert Job.objects.filter(pk=lock.job_id).exists()
    else:
        assert new_balance is None
        assert ledger_snapshot() == before


# --- failures and races -----------------------------------------------------------------------


@pytest.fixture
def failing_job_insert():
    """A database-side failure of the job insert, wherever the insert comes from."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION bench_fail() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'simulated job insert failure'; END $$;"
            " CREATE TRIGGER bench_fail BEFORE INSERT ON jobs_job"
            " FOR EACH ROW EXECUTE FUNCTION bench_fail();"
        )
    yield  # the test's transaction rollback removes the trigger


def test_a_failing_job_insert_in_the_one_statement_rolls_back_everything(
    user, fund, job_type, failing_job_insert
):
    fund(user, 100)
    before = ledger_snapshot()
    with pytest.raises(DatabaseError):
        services.spend(user=user, job_type="fortune")
    assert ledger_snapshot() == before


@pytest.mark.django_db(transaction=True)
@override_settings(WALLET_VELOCITY_LIMIT=5, WALLET_VELOCITY_WINDOW_SECONDS=60)
def test_racing_spends_never_pass_the_velocity_limit():
    owner = UserFactory()
    JobTypeFactory(code="fortune", price=10)
    services.deposit(user=owner, amount=1000, reference_id="seed", actor=payment_account())

    results = run_concurrently(lambda i: services.spend(user=owner, job_type="fortune"), 12)

    done = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(done) == 5
    assert all(isinstance(r, VelocityLimitExceeded) for r in refused), refused
    assert AuditEvent.objects.filter(action="suspicious.velocity").count() == 7
    assert_ledger_consistent()
