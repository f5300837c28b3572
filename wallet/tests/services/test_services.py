"""The money operations as worked stories: success, each refusal, and that a refusal
changes nothing (balances, transactions, jobs, audit)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings

from audit.models import AuditEvent
from divine_whispers.errors import (
    AmountTooLarge,
    IdempotencyKeyReused,
    InactiveJobType,
    InsufficientBalance,
    NotRefundable,
    PriceMismatch,
    RefundExceedsOriginal,
    SelfTransfer,
    UnknownRecipient,
    ValidationFailed,
    VelocityLimitExceeded,
)
from jobs.models import Job, JobStatus
from jobs.tests.factories import JobTypeFactory
from wallet import services
from wallet.models import Transaction, TransactionType, Wallet
from wallet.tests.factories import payment_account
from wallet.tests.helpers import assert_ledger_consistent, ledger_snapshot

pytestmark = pytest.mark.django_db

BAD_AMOUNTS = [0, -5, 1.5, 1e3, "10", True, None, [], {"n": 1}]


def balance_of(user) -> int:
    return Wallet.objects.get(user=user).balance


# --- deposit ---------------------------------------------------------------------------


def test_deposit_credits_wallet_records_ledger_row_and_audit_event(user, payer):
    result = services.deposit(user=user, amount=300, reference_id="pay-1", actor=payer)

    txn = result.transaction
    assert (txn.type, txn.amount, txn.balance_after, txn.reference_id) == (
        "deposit",
        300,
        300,
        "pay-1",
    )
    assert txn.actor == payer
    assert balance_of(user) == 300
    event = AuditEvent.objects.get(transaction=txn)
    assert (event.action, event.balance_before, event.balance_after) == ("wallet.deposit", 0, 300)
    assert event.actor == payer
    assert_ledger_consistent()


def test_deposit_replay_with_same_reference_returns_original_and_changes_nothing(user, payer):
    first = services.deposit(user=user, amount=300, reference_id="pay-1", actor=payer)
    before = ledger_snapshot()

    again = services.deposit(user=user, amount=300, reference_id="pay-1", actor=payer)

    assert again.replayed and again.transaction.pk == first.transaction.pk
    assert ledger_snapshot() == before


def test_deposit_same_reference_other_amount_is_refused(user, payer):
    services.deposit(user=user, amount=300, reference_id="pay-1", actor=payer)
    before = ledger_snapshot()
    with pytest.raises(IdempotencyKeyReused):
        services.deposit(user=user, amount=301, reference_id="pay-1", actor=payer)
    assert ledger_snapshot() == before


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_deposit_rejects_bad_amounts(user, payer, amount):
    before = ledger_snapshot()
    with pytest.raises(ValidationFailed):
        services.deposit(user=user, amount=amount, reference_id="pay-x", actor=payer)
    assert ledger_snapshot() == before


@pytest.mark.parametrize("reference", [None, "", "x" * 256, "tab\there", "ünïcode"])
def test_deposit_requires_a_printable_reference(user, payer, reference):
    with pytest.raises(ValidationFailed):
        services.deposit(user=user, amount=10, reference_id=reference, actor=payer)
    assert Transaction.objects.count() == 0


@override_settings(WALLET_MAX_TRANSACTION_AMOUNT=1000)
def test_deposit_above_limit_is_amount_too_large(user, payer):
    with pytest.raises(AmountTooLarge):
        services.deposit(user=user, amount=1001, reference_id="pay-big", actor=payer)
    with pytest.raises(AmountTooLarge):
        services.deposit(user=user, amount=2**70, reference_id="pay-huge", actor=payer)
    assert Transaction.objects.count() == 0


@override_settings(WALLET_LARGE_AMOUNT_THRESHOLD=100)
def test_large_amount_is_allowed_but_flagged(user, payer):
    result = services.deposit(user=user, amount=100, reference_id="pay-1", actor=payer)
    actions = list(
        AuditEvent.objects.filter(transaction=result.transaction).values_list("action", flat=True)
    )
    assert sorted(actions) == ["suspicious.large_amount", "wallet.deposit"]


# --- spend ------------------------------------------------------------------------------


def test_spend_debits_price_and_creates_one_pending_job(user, fund, job_type):
    fund(user, 120)

    txn, job = services.spend(user=user, job_type="fortune", reference_id="r-1")

    assert (txn.type, txn.amount, txn.balance_after) == ("spend", -50, 70)
    assert (job.status, job.points_used, job.transaction_id, job.user) == (
        "pending",
        50,
        txn.pk,
        user,
    )
    assert balance_of(user) == 70
    assert_ledger_consistent()


def test_spend_with_matching_client_amount_succeeds(user, fund, job_type):
    fund(user, 120)
    txn, _ = services.spend(user=user, job_type="fortune", expected_price=50)
    assert txn.amount == -50


def test_spend_price_mismatch_changes_nothing(user, fund, job_type):
    fund(user, 120)
    before = ledger_snapshot()
    with pytest.raises(PriceMismatch) as caught:
        services.spend(user=user, job_type="fortune", expected_price=49)
    assert caught.value.details["price"] == 50
    assert ledger_snapshot() == before


def test_spend_of_inactive_or_unknown_job_type_is_refused(user, fund):
    fund(user, 120)
    JobTypeFactory(code="retired", price=5, active=False)
    before = ledger_snapshot()
    with pytest.raises(InactiveJobType):
        services.spend(user=user, job_type="retired")
    with pytest.raises(ValidationFailed):
        services.spend(user=user, job_type="no-such-type")
    assert ledger_snapshot() == before


def test_insufficient_balance_changes_no_money_but_is_audited(user, fund, job_type):
    fund(user, 49)
    before = ledger_snapshot()

    with pytest.raises(InsufficientBalance):
        services.spend(user=user, job_type="fortune")

    after = ledger_snapshot()
    assert after["balances"] == before["balances"]
    assert after["transactions"] == before["transactions"]
    assert after["jobs"] == before["jobs"]
    rejected = AuditEvent.objects.get(action="wallet.spend.rejected")
    assert rejected.metadata["code"] == "insufficient_balance"
    assert rejected.balance_before == rejected.balance_after == 49


def test_spend_replay_returns_same_job(user, fund, job_type):
    fund(user, 200)
    first_txn, first_job = services.spend(user=user, job_type="fortune", reference_id="r-1")
    again = services.spend(user=user, job_type="fortune", reference_id="r-1")
    assert again.replayed
    assert (again.transaction.pk, again.job.pk) == (first_txn.pk, first_job.pk)
    assert balance_of(user) == 150
    with pytest.raises(IdempotencyKeyReused):
        services.spend(user=user, job_type="fortune", reference_id="r-1", expected_price=50)


@override_settings(WALLET_VELOCITY_LIMIT=3, WALLET_VELOCITY_WINDOW_SECONDS=60)
def test_velocity_limit_counts_spends_and_transfers_from_the_ledger(
    user, other_user, fund, job_type
):
    fund(user, 1000)
    services.spend(user=user, job_type="fortune")
    services.transfer(sender=user, recipient=other_user, amount=5)
    services.spend(user=user, job_type="fortune")
    before = ledger_snapshot()

    with pytest.raises(VelocityLimitExceeded):
        services.spend(user=user, job_type="fortune")

    assert ledger_snapshot()["transactions"] == before["transactions"]
    assert ledger_snapshot()["balances"] == before["balances"]
    assert AuditEvent.objects.filter(action="suspicious.velocity").count() == 1


def test_a_failing_job_insert_rolls_back_the_debit(user, fund, job_type, monkeypatch):
    """Force an error after the balance was computed and the spend row inserted."""
    fund(user, 100)
    before = ledger_snapshot()
    # Job.objects.create is only called by the general path (the fast path writes the
    # job inside one statement: see test_spend_fast_path.py for its failure test).
    monkeypatch.setattr(services.spending, "_spend_fast", lambda *args, **kwargs: None)

    def broken_create(*args, **kwargs):
        raise IntegrityError("simulated job insert failure")

    monkeypatch.setattr(Job.objects, "create", broken_create)
    with pytest.raises(IntegrityError):
        services.spend(user=user, job_type="fortune")
    assert ledger_snapshot() == before


# --- transfer ----------------------------------------------------------------------------


def test_transfer_writes_a_pair_that_nets_to_zero(user, other_user, fund):
    fund(user, 100)
    result = services.transfer(sender=user, recipient=other_user, amount=40, description="gift")

    assert (result.debit.amount, result.credit.amount) == (-40, 40)
    assert result.debit.transfer_id == result.credit.transfer_id
    assert (balance_of(user), balance_of(other_user)) == (60, 40)
    assert_ledger_consistent()


def test_transfer_refusals_change_nothing(user, other_user, fund):
    fund(user, 100)
    before = ledger_snapshot()
    with pytest.raises(SelfTransfer):
        services.transfer(sender=user, recipient=user, amount=1)
    with pytest.raises(UnknownRecipient):
        services.transfer(sender=user, recipient=10**9, amount=1)
    with pytest.raises(ValidationFailed):
        services.transfer(sender=user, recipient="2", amount=1)
    with pytest.raises(AmountTooLarge):
        services.transfer(sender=user, recipient=other_user, amount=100_001)
    after = ledger_snapshot()
    assert after == before
    with pytest.raises(InsufficientBalance):
        services.transfer(sender=user, recipient=other_user, amount=101)
    assert ledger_snapshot()["balances"] == before["balances"]
    assert ledger_snapshot()["transactions"] == before["transactions"]


def test_transfer_replay(user, other_user, fund):
    fund(user, 100)
    first = services.transfer(sender=user, recipient=other_user, amount=10, reference_id="t-1")
    again = services.transfer(sender=user, recipient=other_user, amount=10, reference_id="t-1")
    assert again.replayed and (again.debit.pk, again.credit.pk) == (first.debit.pk, first.credit.pk)
    with pytest.raises(IdempotencyKeyReused):
        services.transfer(sender=user, recipient=other_user, amount=11, reference_id="t-1")
    assert balance_of(user) == 90


# --- refund ---------------------------------------------------------------------------------


def test_partial_then_full_refund_marks_job_refunded(user, fund, job_type, staff):
    fund(user, 100)
    txn, job = services.spend(user=user, job_type="fortune")

    partial = services.refund(spend_txn=txn, amount=20, reason="late", actor=staff)
    rest = services.refund(spend_txn=txn, reason="cancelled", actor=staff)

    assert (partial.transaction.amount, rest.transaction.amount) == (20, 30)
    assert rest.transaction.related_transaction_id == txn.pk
    assert balance_of(user) == 100
    job.refresh_from_db()
    assert job.status == JobStatus.REFUNDED
    before = ledger_snapshot()
    with pytest.raises(RefundExceedsOriginal):
        services.refund(spend_txn=txn, reason="again", actor=staff)
    with pytest.raises(RefundExceedsOriginal):
        services.refund(spend_txn=txn, amount=1, reason="again", actor=staff)
    assert ledger_snapshot() == before
    assert_ledger_consistent()


def test_refund_of_non_spend_and_bad_inputs(user, fund, job_type, staff):
    fund(user, 100)
    deposit = Transaction.objects.get(user=user, type=TransactionType.DEPOSIT)
    txn, _ = services.spend(user=user, job_type="fortune")
    before = ledger_snapshot()
    with pytest.raises(NotRefundable):
        services.refund(spend_txn=deposit, reason="nope", actor=staff)
    with pytest.raises(RefundExceedsOriginal):
        services.refund(spend_txn=txn, amount=51, reason="too much", actor=staff)
    with pytest.raises(ValidationFailed):
        services.refund(spend_txn=txn, amount=10, reason="   ", actor=staff)
    with pytest.raises(ValidationFailed):
        services.refund(spend_txn=txn, amount=0, reason="zero", actor=staff)
    assert ledger_snapshot() == before


# --- adjust ---------------------------------------------------------------------------------


def test_adjust_both_directions_and_refuses_negative_result(user, staff):
    services.adjust(user=user, amount=70, reason="goodwill", actor=staff)
    services.adjust(user=user, amount=-20, reason="correction", actor=staff)
    assert balance_of(user) == 50
    before = ledger_snapshot()
    with pytest.raises(InsufficientBalance):
        services.adjust(user=user, amount=-51, reason="too far", actor=staff)
    with pytest.raises(ValidationFailed):
        services.adjust(user=user, amount=0, reason="zero", actor=staff)
    with pytest.raises(ValidationFailed):
        services.adjust(user=user, amount=5, reason="", actor=staff)
    after = ledger_snapshot()
    assert after["balances"] == before["balances"]
    assert after["transactions"] == before["transactions"]
    assert_ledger_consistent()


# --- the database is the last line -------------------------------------------------------------


def test_database_refuses_a_negative_balance(user, fund):
    fund(user, 10)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE wallet_wallet SET balance = -1 WHERE user_id = %s", [user.pk])
    assert balance_of(user) == 10


def test_database_refuses_a_duplicate_reference(user, fund):
    fund(user, 10)
    original = Transaction.objects.get(user=user)
    duplicate = Transaction(
        wallet=original.wallet,
        user=user,
        type=original.type,
        amount=5,
        balance_after=15,
        reference_id=original.reference_id,
        created_at=original.created_at,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.bulk_create([duplicate])


def test_ledger_rows_cannot_be_edited_through_the_orm(user, fund):
    fund(user, 10)
    row = Transaction.objects.get(user=user)
    with pytest.raises(TypeError):
        row.save()
    with pytest.raises(TypeError):
        Transaction.objects.filter(pk=row.pk).update(amount=1)
    with pytest.raises(TypeError):
        Transaction.objects.all().delete()


def test_operations_on_an_unknown_user_id_are_not_found(staff):
    from divine_whispers.errors import NotFound

    before = ledger_snapshot()
    with pytest.raises(NotFound):
        services.deposit(user=10**9, amount=5, reference_id="pay-ghost", actor=payment_account())
    with pytest.raises(NotFound):
        services.adjust(user=10**9, amount=5, reason="ghost", actor=staff)
    with pytest.raises(ValidationFailed):
        services.adjust(user="1", amount=5, reason="ghost", actor=staff)
    assert ledger_snapshot() == before
