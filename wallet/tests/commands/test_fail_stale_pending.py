"""cleanup_pending: stale pending rows become failed, audited, idempotent; fresh ones stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditEvent
from audit.tests.helpers import book_pending, run_command, verify
from wallet.management.commands.fail_stale_pending import parse_duration
from wallet.models import Transaction, Wallet
from wallet.services import fail_stale_pending

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["15", "15x", "m", "0m", "-5m", "1.5h", ""])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(CommandError) as refused:
        parse_duration(text)
    assert refused.value.returncode == 2


def test_stale_pending_rows_fail_audited_and_a_rerun_changes_nothing(user, other_user, fund):
    fund(user, 100)
    now = timezone.now()
    stale = [
        book_pending(user, 30, created_at=now - timedelta(hours=1), reference_id="s1"),
        book_pending(other_user, 20, created_at=now - timedelta(minutes=16), reference_id="s2"),
    ]
    fresh = book_pending(user, 10, created_at=now - timedelta(minutes=5), reference_id="f1")
    balances = dict(Wallet.objects.values_list("id", "balance"))

    run = run_command("cleanup_pending", "--older-than", "15m")

    assert run.code == 0
    assert "Failed 2 pending transaction(s)" in run.stdout
    assert set(Transaction.objects.filter(pk__in=stale).values_list("status", flat=True)) == {
        "failed"
    }
    assert Transaction.objects.get(pk=fresh).status == "pending"
    assert dict(Wallet.objects.values_list("id", "balance")) == balances  # no money moved
    events = AuditEvent.objects.filter(action="wallet.pending_failed")
    assert sorted(events.values_list("transaction_id", flat=True)) == sorted(stale)
    for event in events:
        assert event.wallet.audit_head == event.hash
        assert event.metadata["reason"] == "stale_pending"
    assert verify().code == 0

    again = run_command("cleanup_pending", "--older-than", "15m")
    assert "Failed 0 pending transaction(s)" in again.stdout
    assert events.count() == 2


def test_dry_run_only_counts(user):
    pk = book_pending(user, 30, created_at=timezone.now() - timedelta(days=2), reference_id="x")
    run = run_command("cleanup_pending", "--older-than", "1d", "--dry-run")
    assert "1 pending transaction(s) older than 1 day, 0:00:00 (dry run)." in run.stdout
    assert Transaction.objects.get(pk=pk).status == "pending"


def test_many_stale_rows_of_one_wallet_are_processed_in_batches(user):
    old = timezone.now() - timedelta(hours=3)
    ids = [book_pending(user, 1, created_at=old, reference_id=f"b{i}") for i in range(7)]
    assert fail_stale_pending(older_than=timedelta(hours=1), batch_size=3) == 7
    assert set(Transaction.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        "failed"
    }
    assert verify().code == 0


def test_fail_stale_pending_is_the_command_and_cleanup_pending_its_alias(user):
    """`cleanup_pending` is the old name (the contract's): same output, plus a notice."""
    book_pending(user, 30, created_at=timezone.now() - timedelta(days=2), reference_id="x")

    new = run_command("fail_stale_pending", "--older-than", "1d", "--dry-run")
    old = run_command("cleanup_pending", "--older-than", "1d", "--dry-run")

    assert (new.code, new.stdout) == (old.code, old.stdout) == (0, new.stdout)
    assert "1 pending transaction(s)" in new.stdout
    assert "cleanup_pending is the old name of fail_stale_pending" in old.stderr
    assert "old name" not in new.stderr
