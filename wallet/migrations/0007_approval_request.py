"""Approval requests for large adjustments (four eyes), and their database guard.

On PostgreSQL a trigger makes a request immutable except for its one decision: an
UPDATE may only move `status` from `pending` to approved/rejected/expired, filling the
decision fields; the request itself (wallet, amount, reason, requester, expiry…) never
changes, a decided request never changes again, and no row is ever deleted. TRUNCATE
goes through the same guard as the ledger's (audit migration 0002).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


ERRCODE = "integrity_constraint_violation"
DECISION_FIELDS = ["status", "decided_by_id", "decided_at", "decision_reason", "transaction_id"]

GUARD = f"""
CREATE OR REPLACE FUNCTION dw_approval_row_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.status = 'pending'
       AND NEW.status IN ('approved', 'rejected', 'expired')
       AND (to_jsonb(NEW) - {' - '.join(repr(f) for f in [*DECISION_FIELDS, "updated_at"])})
         = (to_jsonb(OLD) - {' - '.join(repr(f) for f in [*DECISION_FIELDS, "updated_at"])})
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION USING
        ERRCODE = '{ERRCODE}',
        MESSAGE = format('%s: %s refused (row id %s)', TG_TABLE_NAME, TG_OP, OLD.id),
        HINT = 'An approval request is decided once, from pending; nothing else changes.';
END;
$$;
"""


def install(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("wallet", "ApprovalRequest")._meta.db_table
    schema_editor.execute(GUARD, None)
    schema_editor.execute(
        f'CREATE TRIGGER dw_approval_rows BEFORE UPDATE OR DELETE ON "{table}" '
        "FOR EACH ROW EXECUTE FUNCTION dw_approval_row_guard()"
    )
    schema_editor.execute(
        f'CREATE TRIGGER dw_approval_truncate BEFORE TRUNCATE ON "{table}" '
        "FOR EACH STATEMENT EXECUTE FUNCTION dw_truncate_guard()"
    )


def uninstall(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("wallet", "ApprovalRequest")._meta.db_table
    schema_editor.execute(f'DROP TRIGGER IF EXISTS dw_approval_rows ON "{table}"')
    schema_editor.execute(f'DROP TRIGGER IF EXISTS dw_approval_truncate ON "{table}"')
    schema_editor.execute("DROP FUNCTION IF EXISTS dw_approval_row_guard()")


class Migration(migrations.Migration):

    dependencies = [
        ('wallet', '0006_hash_drf_tokens'),
        ('audit', '0002_append_only_triggers'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApprovalRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('amount', models.BigIntegerField()),
                ('reason', models.CharField(max_length=500)),
                ('reference_id', models.CharField(blank=True, max_length=255, null=True)),
                ('request_fingerprint', models.CharField(max_length=64)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('expired', 'Expired')], default='pending', max_length=8)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_reason', models.CharField(blank=True, default='', max_length=500)),
                ('expires_at', models.DateTimeField()),
                ('created_at', models.DateTimeField()),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('transaction', models.OneToOneField(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='approval', to='wallet.transaction')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('wallet', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='approval_requests', to='wallet.wallet')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'permissions': [('approve_adjustment', 'Can approve or reject a large adjustment')],
                'indexes': [models.Index(fields=['status', '-created_at', '-id'], name='approval_queue'), models.Index(fields=['wallet', '-created_at'], name='approval_wallet')],
                'constraints': [models.CheckConstraint(condition=models.Q(('amount', 0), _negated=True), name='approval_amount_non_zero'), models.CheckConstraint(condition=models.Q(('reason', ''), _negated=True), name='approval_has_reason'), models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'approved', 'rejected', 'expired'])), name='approval_status_known'), models.CheckConstraint(condition=models.Q(('decided_by__isnull', True), models.Q(('decided_by', models.F('requested_by')), _negated=True), _connector='OR'), name='approval_four_eyes'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'approved'), ('transaction__isnull', False)), models.Q(models.Q(('status', 'approved'), _negated=True), ('transaction__isnull', True)), _connector='OR'), name='approval_booked_iff_approved'), models.CheckConstraint(condition=models.Q(models.Q(('status__in', ['approved', 'rejected']), _negated=True), models.Q(('decided_at__isnull', False), ('decided_by__isnull', False)), _connector='OR'), name='approval_decision_has_decider'), models.CheckConstraint(condition=models.Q(models.Q(('status', 'rejected'), _negated=True), models.Q(('decision_reason', ''), _negated=True), _connector='OR'), name='approval_rejection_has_reason'), models.UniqueConstraint(condition=models.Q(('reference_id__isnull', False)), fields=('wallet', 'reference_id'), name='approval_unique_reference')],
            },
        ),
        migrations.RunPython(install, uninstall, elidable=False),
    ]
