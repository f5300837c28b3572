"""verify_ledger checkpoints: a history truncated or rewritten behind one is a finding.

The tampers are what a database owner can do with raw SQL (append-only triggers switched
off, as a superuser could): plain verification cannot see them when they are made
self-consistent, a checkpoint kept elsewhere can.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.hashing import compute_event_hash
from audit.models import AuditEvent, LedgerVerification, wallet_chain
from audit.tests.helpers import populate_ledger, sql, triggers_disabled, verify
from wallet import services
from wallet.models import Transaction, Wallet
from wallet.tests.factories import payment_account

pytestmark = pytest.mark.django_db

TXN = "wallet_transaction"
EVENTS = "audit_auditevent"


@pytest.fixture
def ledger():
    return populate_ledger()


def _save_checkpoint(tmp_path) -> str:
    run = verify("--json")
    assert run.code == 0, run.stdout
    path = tmp_path / "checkpoint.json"
    path.write_text(run.stdout)
    return str(path)


def _truncate_newest(wallet: Wallet, keep_txn: Transaction) -> None:
    """The issue's edit: delete the wallet's rows and events after `keep_txn` (and put its
    lots back as they were), then reset the balance and the chain head to what they were
    right after it."""
    chain = wallet_chain(wallet.pk)
    keep_event = (
        AuditEvent.objects.filter(chain=chain, transaction=keep_txn).order_by("-id").first()
    )
    newer = f"SELECT id FROM {TXN} WHERE wallet_id = %s AND id > %s"
    # The lots as they were: what the newer rows drew goes back, what they gave is gone.
    sql(
        "UPDATE wallet_lot l SET remaining = remaining + d.total FROM (SELECT a.lot_id,"
        " SUM(CASE WHEN t.amount < 0 THEN a.amount ELSE -a.amount END) AS total"
        f" FROM wallet_allocation a JOIN {TXN} t ON t.id = a.transaction_id"
        f" WHERE a.transaction_id IN ({newer}) GROUP BY a.lot_id) d WHERE l.id = d.lot_id",
        [wallet.pk, keep_txn.pk],
    )
    sql(
        f"DELETE FROM wallet_allocation WHERE transaction_id IN ({newer})", [wallet.pk, keep_txn.pk]
    )
    sql(f"DELETE FROM wallet_lot WHERE source_id IN ({newer})", [wallet.pk, keep_txn.pk])
    with triggers_disabled(TXN, EVENTS):
        sql(f"DELETE FROM {EVENTS} WHERE chain = %s AND id > %s", [chain, keep_event.pk])
        sql(f"DELETE FROM {TXN} WHERE wallet_id = %s AND id > %s", [wallet.pk, keep_txn.pk])
    sql(
        "UPDATE wallet_wallet SET balance = %s, audit_head = %s WHERE id = %s",
        [keep_txn.balance_after, keep_event.hash, wallet.pk],
    )


def test_json_report_carries_a_checkpoint_of_every_chain(ledger):
    report = verify("--json").json()
    chains = report["checkpoint"]["chains"]
    assert set(chains) == set(AuditEvent.objects.values_list("chain", flat=True))
    for chain, entry in chains.items():
        events = AuditEvent.objects.filter(chain=chain).order_by("id")
        assert entry == {"length": events.count(), "head": events.last().hash}
    alice = Wallet.objects.get(user=ledger.alice)
    assert chains[wallet_chain(alice.pk)]["head"] == alice.audit_head


def test_appending_after_a_checkpoint_stays_clean(ledger, tmp_path):
    path = _save_checkpoint(tmp_path)
    services.deposit(user=ledger.alice, amount=5, reference_id="later", actor=payment_account())
    run = verify("--checkpoint", path)
    assert run.code == 0, run.stdout
    chains = len(json.loads(Path(path).read_text())["checkpoint"]["chains"])
    assert (
        f"Checkpoint {path}: {chains} chain(s) checked, every chain still holds its recorded head."
        in run.stdout
    )


def test_the_reports_say_whether_a_checkpoint_was_used(ledger, tmp_path):
    assert "Checkpoint" not in verify().stdout
    assert verify("--json").json()["checkpoint_checked"] is None
    path = _save_checkpoint(tmp_path)
    checked = verify("--json", "--checkpoint", path).json()["checkpoint_checked"]
    chains = len(json.loads(Path(path).read_text())["checkpoint"]["chains"])
    assert checked == {"chains": chains, "held": True, "file": path}


def test_truncated_newest_rows_pass_plain_verify_but_not_the_checkpoint(ledger, tmp_path):
    before = services.deposit(
        user=ledger.alice, amount=40, reference_id="p2", actor=payment_account()
    )
    services.spend(user=ledger.alice, job_type="tarot", reference_id="newest")
    path = _save_checkpoint(tmp_path)
    wallet = Wallet.objects.get(user=ledger.alice)
    # The spend's job row points at the spend: gone with it, as the owner would do.
    sql(
        "DELETE FROM jobs_job WHERE transaction_id > %s AND user_id = %s",
        [
            before.transaction.pk,
            ledger.alice.pk,
        ],
    )
    _truncate_newest(wallet, before.transaction)

    plain = verify()
    checked = verify("--checkpoint", path)

    assert plain.code == 0, plain.stdout  # the hole the checkpoint closes
    assert checked.code == 1
    print(checked.stdout)  # quoted in the closing note (pytest -s)
    chain = wallet_chain(wallet.pk)
    assert f"[checkpoint] chain {chain}: truncated behind the checkpoint" in checked.stdout
    assert "chain(s) checked, it does NOT hold (see the findings)." in checked.stdout
    report = verify("--json", "--checkpoint", path).json()
    assert report["checkpoint_checked"]["held"] is False
    (finding,) = report["findings"]
    assert (finding["check"], finding["chain"], finding["wallet_id"]) == (
        "checkpoint",
        chain,
        wallet.pk,
    )
    recorded = json.loads(Path(path).read_text())["checkpoint"]["chains"][chain]
    assert finding["expected"] == recorded
    assert finding["found"]["length"] == recorded["length"] - 1  # the spend's event gone


def _rehash_chain_from(event: AuditEvent) -> None:
    """Re-chain every event from `event` on with the real key: a key holder's rewrite."""
    chain_events = list(
        AuditEvent.objects.filter(chain=event.chain, id__gte=event.pk).order_by("id")
    )
    previous = AuditEvent.objects.filter(chain=event.chain, id__lt=event.pk).order_by("-id").first()
    prev_hash = previous.hash if previous else ""
    chain_events[0].metadata = event.metadata  # the rewrite itself
    with triggers_disabled(EVENTS):
        for current in chain_events:
            current.prev_hash = prev_hash
            current.hash = compute_event_hash(current)
            sql(
                f"UPDATE {EVENTS} SET metadata = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [json.dumps(current.metadata), current.prev_hash, current.hash, current.pk],
            )
            prev_hash = current.hash
    sql("UPDATE wallet_wallet SET audit_head = %s WHERE id = %s", [prev_hash, event.wallet_id])


def test_older_event_rewritten_behind_the_checkpoint_is_named(ledger, tmp_path):
    path = _save_checkpoint(tmp_path)
    older = AuditEvent.objects.get(transaction=ledger.spend, action="wallet.spend")
    older.metadata = {**older.metadata, "job_type": "something-else"}
    _rehash_chain_from(older)

    plain = verify()
    checked = verify("--json", "--checkpoint", path)

    assert plain.code == 0, plain.stdout  # consistent, key-made history
    assert checked.code == 1
    (finding,) = checked.json()["findings"]
    assert finding["check"] == "checkpoint"
    assert finding["chain"] == older.chain
    assert "rewritten behind the checkpoint" in finding["message"]


def test_edited_event_without_the_key_is_named_twice(ledger, tmp_path):
    path = _save_checkpoint(tmp_path)
    older = AuditEvent.objects.get(transaction=ledger.spend, action="wallet.spend")
    with triggers_disabled(EVENTS):
        sql(f"UPDATE {EVENTS} SET amount = amount - 1 WHERE id = %s", [older.pk])
    checks = {f["check"] for f in verify("--json", "--checkpoint", path).json()["findings"]}
    assert "audit_hash" in checks


@pytest.mark.parametrize(
    "content",
    ["not json", "{}", '{"chains": {"wallet:1": {"length": 0, "head": "x"}}}', "[]"],
)
def test_unusable_checkpoint_file_exits_2(ledger, tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    run = verify("--checkpoint", str(path))
    assert run.code == 2
    assert "cannot use checkpoint" in run.stderr


def test_missing_checkpoint_file_exits_2(ledger, tmp_path):
    run = verify("--checkpoint", str(tmp_path / "nope.json"))
    assert run.code == 2


def test_each_run_is_recorded_for_metrics(ledger):
    assert verify().code == 0
    sql("UPDATE wallet_wallet SET balance = balance + 1 WHERE user_id = %s", [ledger.bob.pk])
    assert verify().code == 1
    runs = dict(LedgerVerification.objects.last_runs())
    assert set(runs) == {"ok", "findings"}
    assert runs["findings"] >= runs["ok"]
    latest = LedgerVerification.objects.first()
    assert (latest.result, latest.finding_count) == ("findings", 1)
