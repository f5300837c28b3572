"""The append-only triggers, exercised with raw SQL (the ORM guard is bypassed on purpose).

Each refused statement runs in its own savepoint so the test's transaction survives it.
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.tests.helpers import book_pending, sql
from wallet.models import Transaction

pytestmark = pytest.mark.django_db

TXN = "wallet_transaction"
EVENTS = "audit_auditevent"


def _refused(statement: str, params: tuple | list = (), match: str = "append-only") -> None:
    with pytest.raises(IntegrityError, match=match), transaction.atomic():
        sql(statement, params)


def _status(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {TXN} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.fixture
def deposit(user, fund) -> Transaction:
    fund(user, 100)
    return Transaction.objects.get(user=user)


@pytest.fixture
def pending_id(user) -> int:
    return book_pending(user, 40, created_at=timezone.now(), reference_id="pending-1")


def test_ledger_row_update_and_delete_are_refused(deposit):
    _refused(f"UPDATE {TXN} SET amount = 1 WHERE id = %s", [deposit.pk])
    _refused(f"UPDATE {TXN} SET balance_after = 1 WHERE id = %s", [deposit.pk])
    _refused(f"UPDATE {TXN} SET description = 'x' WHERE id = %s", [deposit.pk])
    _refused(f"DELETE FROM {TXN} WHERE id = %s", [deposit.pk])
    assert Transaction.objects.get(pk=deposit.pk).amount == 100


def test_a_successful_row_cannot_change_status(deposit):
    _refused(f"UPDATE {TXN} SET status = 'failed' WHERE id = %s", [deposit.pk])
    _refused(f"UPDATE {TXN} SET status = 'pending' WHERE id = %s", [deposit.pk])
    assert _status(deposit.pk) == "success"


@pytest.mark.parametrize("final", ["success", "failed"])
def test_pending_may_move_to_success_or_failed_once(pending_id, final):
    sql(f"UPDATE {TXN} SET status = %s, updated_at = now() WHERE id = %s", [final, pending_id])
    assert _status(pending_id) == final
    # …and never back, nor on to the other outcome.
    _refused(f"UPDATE {TXN} SET status = 'pending' WHERE id = %s", [pending_id])
    other = "failed" if final == "success" else "success"
    _refused(f"UPDATE {TXN} SET status = %s WHERE id = %s", [other, pending_id])


def test_pending_status_change_cannot_smuggle_another_column(pending_id):
    _refused(f"UPDATE {TXN} SET status = 'success', amount = 999 WHERE id = %s", [pending_id])
    _refused(f"UPDATE {TXN} SET status = 'success', balance_after = 9 WHERE id = %s", [pending_id])
    _refused(f"UPDATE {TXN} SET status = 'expired' WHERE id = %s", [pending_id])
    assert _status(pending_id) == "pending"


def test_audit_event_update_and_delete_are_refused(deposit):
    event = AuditEvent.objects.get(transaction=deposit)
    _refused(f"UPDATE {EVENTS} SET metadata = '{{}}'::jsonb, amount = 1 WHERE id = %s", [event.pk])
    _refused(f"UPDATE {EVENTS} SET hash = 'x' WHERE id = %s", [event.pk])
    _refused(f"DELETE FROM {EVENTS} WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).hash == event.hash


def test_truncate_is_refused_without_the_escape_hatch(deposit):
    sql("SET CONSTRAINTS ALL IMMEDIATE")  # no deferred FK events pending on the tables
    for statement in (f"TRUNCATE {EVENTS}", f"TRUNCATE {TXN} CASCADE"):
        with pytest.raises(IntegrityError, match="TRUNCATE refused"), transaction.atomic():
            sql("SET LOCAL divine_whispers.allow_truncate = 'off'")
            sql(statement)
    assert Transaction.objects.filter(pk=deposit.pk).exists()
    assert AuditEvent.objects.filter(transaction=deposit).exists()


def test_escape_hatch_needs_the_table_owner_not_just_the_setting(deposit):
    """A role with TRUNCATE privilege but not owning the table stays refused."""
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("CREATE ROLE dw_integrity_intruder NOLOGIN")  # rolled back with the test
    sql(f"GRANT TRUNCATE ON {EVENTS} TO dw_integrity_intruder")
    with pytest.raises(IntegrityError, match="TRUNCATE refused"), transaction.atomic():
        sql("SET LOCAL ROLE dw_integrity_intruder")
        sql("SET LOCAL divine_whispers.allow_truncate = 'on'")
        sql(f"TRUNCATE {EVENTS}")
    assert AuditEvent.objects.filter(transaction=deposit).exists()


def test_escape_hatch_lets_the_owner_truncate(deposit):
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    with transaction.atomic():
        sql("SET LOCAL divine_whispers.allow_truncate = 'on'")
        sql(f"TRUNCATE {EVENTS}")
    assert not AuditEvent.objects.exists()
