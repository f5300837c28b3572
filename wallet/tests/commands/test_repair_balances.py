"""replay_ledger: dry run lists; --apply repairs, audited on the wallet's chain; rerun clean."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from audit.tests.helpers import populate_ledger, run_command, sql, triggers_disabled, verify
from wallet.models import Wallet

pytestmark = pytest.mark.django_db


@pytest.fixture
def tampered():
    """A populated ledger whose alice's and bob's cached balances were edited in SQL."""
    ledger = populate_ledger()
    alice = Wallet.objects.get(user=ledger.alice)
    bob = Wallet.objects.get(user=ledger.bob)
    sql("UPDATE wallet_wallet SET balance = balance + 500 WHERE id = %s", [alice.pk])
    sql("UPDATE wallet_wallet SET balance = 0 WHERE id = %s", [bob.pk])
    return alice, bob


def test_dry_run_is_the_default_lists_differences_and_changes_nothing(tampered):
    alice, bob = tampered
    events = AuditEvent.objects.count()

    run = run_command("replay_ledger")

    assert run.code == 1
    assert (
        f"wallet {alice.pk}: cached balance {alice.balance + 500}, ledger sum {alice.balance} "
        "(difference -500)" in run.stdout
    )
    assert f"wallet {bob.pk}: cached balance 0, ledger sum {bob.balance}" in run.stdout
    assert Wallet.objects.get(pk=alice.pk).balance == alice.balance + 500
    assert AuditEvent.objects.count() == events


def test_apply_repairs_audits_each_fix_and_a_second_run_finds_nothing(tampered):
    alice, bob = tampered
    assert verify().code == 1

    run = run_command("replay_ledger", "--apply", "--noinput", "--no-progress")

    assert run.code == 0, run.stderr
    assert "Repaired 2 balance(s)." in run.stdout
    assert Wallet.objects.get(pk=alice.pk).balance == alice.balance
    assert Wallet.objects.get(pk=bob.pk).balance == bob.balance
    fix = AuditEvent.objects.get(wallet=alice, action="wallet.balance_repaired")
    assert (fix.balance_before, fix.balance_after, fix.amount) == (
        alice.balance + 500,
        alice.balance,
        -500,
    )
    assert Wallet.objects.get(pk=alice.pk).audit_head == fix.hash  # newest on its chain
    assert verify().code == 0  # chain intact, every balance = its ledger sum

    again = run_command("replay_ledger", "--apply", "--noinput")
    assert again.code == 0
    assert "OK: every balance equals its ledger sum." in again.stdout
    assert AuditEvent.objects.filter(action="wallet.balance_repaired").count() == 2


def test_apply_asks_for_confirmation(tampered, monkeypatch):
    alice, _ = tampered
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    run = run_command("replay_ledger", "--apply")
    assert run.code == 1 and "Aborted" in run.stderr
    assert Wallet.objects.get(pk=alice.pk).balance == alice.balance + 500

    monkeypatch.setattr("builtins.input", lambda prompt: "yes")
    assert run_command("replay_ledger", "--apply", "--no-progress").code == 0
    assert Wallet.objects.get(pk=alice.pk).balance == alice.balance


def test_a_negative_ledger_sum_is_reported_not_written(db):
    ledger = populate_ledger()
    carol = Wallet.objects.get(user=ledger.carol)
    with triggers_disabled("wallet_transaction"):
        sql("UPDATE wallet_transaction SET amount = -1000 WHERE id = %s", [ledger.adjustment.pk])

    run = run_command("replay_ledger", "--apply", "--noinput", "--no-progress")

    assert run.code == 1
    assert f"wallet {carol.pk}: not repaired: the ledger sum is negative" in run.stderr
    assert Wallet.objects.get(pk=carol.pk).balance == carol.balance


def test_repair_balances_is_the_command_and_replay_ledger_its_alias(tampered):
    """`replay_ledger` is the old name: same output and exit code, plus a notice."""
    new = run_command("repair_balances")
    old = run_command("replay_ledger")

    assert (new.code, new.stdout) == (old.code, old.stdout) == (1, new.stdout)
    assert "old name of repair_balances" not in new.stderr
    assert "replay_ledger is the old name of repair_balances" in old.stderr
