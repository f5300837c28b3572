"""Append-only ledger enforced by PostgreSQL itself (triggers).

* `wallet_transaction`: UPDATE is refused unless it only moves `status` from
  `pending` to `success`/`failed` (and touches `updated_at`); DELETE is refused.
* `audit_auditevent`: UPDATE and DELETE are refused.
* Both: TRUNCATE is refused, except through one explicit escape hatch: the session
  setting `divine_whispers.allow_truncate = on` **and** a role that owns the table (or
  is a superuser). Such a role could `ALTER TABLE … DISABLE TRIGGER` anyway, so the
  hatch grants nothing new; it exists because the test suite's `flush` (pytest-django
  `transaction=True` tests) TRUNCATEs every table. Only the root conftest.py sets it.

On SQLite nothing is installed: the ORM guards (append-only querysets and `save`) are
the protection there (see README, "Integrity and operations").
"""

from django.db import migrations

ERRCODE = "integrity_constraint_violation"  # SQLSTATE 23000 → Django IntegrityError

FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION dw_ledger_row_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The one permitted change: a pending row is confirmed or failed, nothing else moves.
    IF TG_OP = 'UPDATE'
       AND OLD.status = 'pending'
       AND NEW.status IN ('success', 'failed')
       AND (to_jsonb(NEW) - 'status' - 'updated_at') = (to_jsonb(OLD) - 'status' - 'updated_at')
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '{ERRCODE}',
        MESSAGE = format('%s rows are append-only: %s refused (row id %s)',
                         TG_TABLE_NAME, TG_OP, OLD.id),
        HINT = 'Only status pending -> success/failed may change; corrections are new rows.';
END;
$$;

CREATE OR REPLACE FUNCTION dw_audit_row_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = '{ERRCODE}',
        MESSAGE = format('%s rows are append-only: %s refused (row id %s)',
                         TG_TABLE_NAME, TG_OP, OLD.id);
END;
$$;

CREATE OR REPLACE FUNCTION dw_truncate_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Escape hatch for the test suite's flush and for maintenance by the table owner.
    IF coalesce(current_setting('divine_whispers.allow_truncate', true), '') = 'on'
       AND pg_has_role(current_user,
                       (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '{ERRCODE}',
        MESSAGE = format('%s is append-only: TRUNCATE refused', TG_TABLE_NAME),
        HINT = 'Table owner only: SET divine_whispers.allow_truncate = on (see README).';
END;
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS dw_ledger_row_guard();
DROP FUNCTION IF EXISTS dw_audit_row_guard();
DROP FUNCTION IF EXISTS dw_truncate_guard();
"""


def _tables(apps) -> dict[str, str]:
    return {
        "dw_ledger_row_guard": apps.get_model("wallet", "Transaction")._meta.db_table,
        "dw_audit_row_guard": apps.get_model("audit", "AuditEvent")._meta.db_table,
    }


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS, None)  # None: the %s are format()'s, not params
    for function, table in _tables(apps).items():
        schema_editor.execute(
            f'CREATE TRIGGER dw_append_only_rows BEFORE UPDATE OR DELETE ON "{table}" '
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        schema_editor.execute(
            f'CREATE TRIGGER dw_append_only_truncate BEFORE TRUNCATE ON "{table}" '
            "FOR EACH STATEMENT EXECUTE FUNCTION dw_truncate_guard()"
        )


def uninstall(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _tables(apps).values():
        schema_editor.execute(f'DROP TRIGGER IF EXISTS dw_append_only_rows ON "{table}"')
        schema_editor.execute(f'DROP TRIGGER IF EXISTS dw_append_only_truncate ON "{table}"')
    schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("wallet", "0001_initial"),
    ]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
