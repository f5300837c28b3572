"""verify_ledger on a populated ledger: clean → exit 0; each raw-SQL tamper → exit 1, named."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import override_settings

from audit.models import AuditChainHead, AuditEvent
from audit.tests.helpers import populate_ledger, sql, triggers_disabled, verify
from divine_whispers.request_context import (
    RequestContext,
    reset_request_context,
    set_request_context,
)
from wallet import services
from wallet.models import Wallet
from wallet.tests.factories import payment_account
from wallet.tests.helpers import ledger_snapshot
from wallet.verification import verify_ledger

pytestmark = pytest.mark.django_db

TXN = "wallet_transaction"
EVENTS = "audit_auditevent"


@pytest.fixture
def ledger():
    return populate_ledger()


def _by_check(run) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for finding in run.json()["findings"]:
        found.setdefault(finding["check"], []).append(finding)
    return found


def _operation_event(txn) -> AuditEvent:
    return AuditEvent.objects.get(transaction=txn, action=f"wallet.{txn.type}")


def test_clean_ledger_exits_0(ledger):
    run = verify()
    assert run.code == 0, run.stdout
    assert "OK: the ledger and all audit chains are intact." in run.stdout
    report = verify("--json").json()
    assert report["clean"] is True and report["findings"] == []
    assert report["counts"]["transactions"] == 10
    assert report["counts"]["audit_events"] == AuditEvent.objects.count() > 10


def test_verify_is_read_only(ledger):
    before = (ledger_snapshot(), list(Wallet.objects.values_list("id", "audit_head")))
    heads = list(AuditChainHead.objects.values_list("name", "head"))
    verify()
    assert (ledger_snapshot(), list(Wallet.objects.values_list("id", "audit_head"))) == before
    assert list(AuditChainHead.objects.values_list("name", "head")) == heads


def test_changed_balance_is_named(ledger):
    wallet = Wallet.objects.get(user=ledger.alice)
    sql("UPDATE wallet_wallet SET balance = balance + 50 WHERE id = %s", [wallet.pk])

    run = verify("--json")

    assert run.code == 1
    (finding,) = _by_check(run)["balance"]
    assert finding["wallet_id"] == wallet.pk
    assert (finding["expected"], finding["found"]) == (wallet.balance, wallet.balance + 50)
    assert len(run.json()["findings"]) == 1


def test_changed_amount_is_named(ledger):
    deposit = ledger.deposit
    with triggers_disabled(TXN):
        sql(f"UPDATE {TXN} SET amount = amount + 7 WHERE id = %s", [deposit.pk])

    found = _by_check(verify("--json"))

    assert found["balance"][0]["wallet_id"] == deposit.wallet_id
    (link,) = found["balance_after"]
    assert (link["transaction_id"], link["expected"], link["found"]) == (deposit.pk, 1007, 1000)
    (mismatch,) = found["event_mismatch"]
    assert mismatch["transaction_id"] == deposit.pk
    assert (mismatch["expected"]["amount"], mismatch["found"]["amount"]) == (1007, 1000)
    # The lots no longer explain the ledger either: the deposit booked 1000 into its lot.
    assert set(found) == {"balance", "balance_after", "event_mismatch", "lot_balance", "allocation"}


def test_deleted_audit_event_is_named(ledger):
    victim = _operation_event(ledger.spend)
    successor = (
        AuditEvent.objects.filter(chain=victim.chain, id__gt=victim.pk).order_by("id").first()
    )
    with triggers_disabled(EVENTS):
        sql(f"DELETE FROM {EVENTS} WHERE id = %s", [victim.pk])

    run = verify("--json")

    assert run.code == 1
    found = _by_check(run)
    (link,) = found["audit_link"]
    assert link["event_id"] == successor.pk
    assert link["found"] == victim.hash and link["expected"] == victim.prev_hash
    (missing,) = found["operation_event"]
    assert (missing["transaction_id"], missing["expected"], missing["found"]) == (
        ledger.spend.pk,
        1,
        0,
    )


def test_deleting_the_newest_events_is_caught_by_the_head(ledger):
    wallet = Wallet.objects.get(user=ledger.carol)
    newest = AuditEvent.objects.filter(wallet=wallet).order_by("-id").first()
    assert newest.action == "wallet.spend.rejected"
    with triggers_disabled(EVENTS):
        sql(f"DELETE FROM {EVENTS} WHERE id = %s", [newest.pk])

    (head,) = _by_check(verify("--json"))["audit_head"]

    assert head["wallet_id"] == wallet.pk
    assert (head["expected"], head["found"]) == (newest.prev_hash, newest.hash)


def test_edited_audit_payload_is_named(ledger):
    event = _operation_event(ledger.refund)
    assert event.metadata == {"reason": "short reading"}
    with triggers_disabled(EVENTS):
        sql(
            f"""UPDATE {EVENTS} SET metadata = jsonb_set(metadata, '{{reason}}', '"bug"')
                WHERE id = %s""",
            [event.pk],
        )

    run = verify("--json")

    assert run.code == 1
    (finding,) = run.json()["findings"]
    assert (finding["check"], finding["event_id"]) == ("audit_hash", event.pk)
    assert finding["found"] == event.hash


def test_broken_transfer_pair_is_named(ledger):
    credit = ledger.transfer_in
    with triggers_disabled(TXN):
        sql(f"UPDATE {TXN} SET transfer_id = %s WHERE id = %s", [uuid.uuid4(), credit.pk])

    found = _by_check(verify("--json"))

    assert set(found) == {"transfer_pair"}
    halves = {finding["transaction_id"] for finding in found["transfer_pair"]}
    assert halves == {ledger.transfer_out.pk, credit.pk}
    assert all(f["found"].startswith("1 row(s) summing to") for f in found["transfer_pair"])


def test_over_refunded_spend_is_named(ledger):
    refund = ledger.refund
    with triggers_disabled(TXN):
        sql(f"UPDATE {TXN} SET amount = 500 WHERE id = %s", [refund.pk])

    found = _by_check(verify("--json"))

    (over,) = found["refund"]
    assert (over["transaction_id"], over["expected"], over["found"]) == (
        ledger.spend.pk,
        "<= 120",
        500,
    )


def test_all_tampers_at_once_are_each_named_in_the_human_report(ledger):
    alice_wallet = Wallet.objects.get(user=ledger.alice)
    sql("UPDATE wallet_wallet SET balance = balance + 50 WHERE id = %s", [alice_wallet.pk])
    with triggers_disabled(TXN, EVENTS):
        sql(f"UPDATE {TXN} SET amount = amount + 7 WHERE id = %s", [ledger.deposit.pk])
        sql(f"DELETE FROM {EVENTS} WHERE id = %s", [_operation_event(ledger.spend).pk])
        sql(
            f'UPDATE {EVENTS} SET metadata = \'{{"reason": "bug"}}\' WHERE id = %s',
            [_operation_event(ledger.refund).pk],
        )
        sql(
            f"UPDATE {TXN} SET transfer_id = %s WHERE id = %s",
            [uuid.uuid4(), ledger.transfer_in.pk],
        )

    run = verify()

    assert run.code == 1
    print(run.stdout)  # the report lines quoted in the closing note (pytest -s)
    for check in ("balance", "balance_after", "audit_link", "audit_hash", "transfer_pair"):
        assert f"[{check}]" in run.stdout
    assert f"transaction {ledger.transfer_in.pk}" in run.stdout
    assert "finding(s)" in run.stderr


def test_wrong_hmac_key_fails_every_event(ledger):
    with override_settings(AUDIT_HMAC_KEY="not-the-key"):
        run = verify("--json")
    assert run.code == 1
    hashes = _by_check(run)["audit_hash"]
    assert len(hashes) == AuditEvent.objects.count()


def test_key_rotation_old_events_still_verify(ledger, staff):
    old_key = django_settings.AUDIT_HMAC_KEY  # the key the ledger fixture's events used
    rotated = {
        "AUDIT_HMAC_KEY": "second-key-2026",
        "AUDIT_HMAC_KEY_ID": "k2",
        "AUDIT_HMAC_OLD_KEYS": {"k1": old_key},
    }
    with override_settings(**rotated):
        services.deposit(
            user=ledger.alice, amount=10, reference_id="after-rotation", actor=payment_account()
        )
        assert set(AuditEvent.objects.values_list("key_id", flat=True)) == {"k1", "k2"}
        assert verify().code == 0
    # Forgetting the old key: its events cannot be checked, and verify says which.
    with override_settings(**{**rotated, "AUDIT_HMAC_OLD_KEYS": {}}):
        run = verify("--json")
    assert run.code == 1
    unknown = _by_check(run)["audit_key"]
    assert len(unknown) == AuditEvent.objects.filter(key_id="k1").count()
    assert unknown[0]["found"] == "k1"


@pytest.mark.parametrize(
    ("remote_addr", "stored"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:DB8:0000::0001", "2001:db8::1"),
        ("::ffff:198.51.100.7", "::ffff:198.51.100.7"),
        ("not-an-ip", None),
    ],
)
def test_client_ip_is_hashed_as_stored(user, staff, remote_addr, stored):
    """PostgreSQL's inet canonicalises IPv6; hashing the raw value was a false alarm."""
    token = set_request_context(RequestContext(request_id="req-1", ip=remote_addr))
    try:
        services.deposit(user=user, amount=5, reference_id="ip", actor=payment_account())
    finally:
        reset_request_context(token)
    assert AuditEvent.objects.get(action="wallet.deposit").ip == stored
    assert verify().code == 0


def test_report_counts_and_findings_come_from_one_snapshot(ledger):
    report = verify_ledger()
    assert report.clean and report.counts["wallets"] == Wallet.objects.count()
    assert connection.vendor == "postgresql"


def test_progress_bars_only_on_a_terminal(tmp_path):
    """Off when stderr is not a terminal (cron, CI, a pipe) and with --no-progress."""
    import io

    from django.core.management import call_command

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    def stderr_of(*args: str, stream: io.StringIO) -> str:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("sys.stderr", stream)
            call_command("verify_ledger", *args, stdout=io.StringIO(), stderr=stream)
        return stream.getvalue()

    assert "ledger checks" in stderr_of(stream=Terminal())
    assert "ledger checks" not in stderr_of("--no-progress", stream=Terminal())
    assert stderr_of(stream=io.StringIO()) == ""  # not a terminal: no bars
