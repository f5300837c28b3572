"""Lots and allocations: every credit books into a lot, every debit records the lots it
drew from; the types `grant` and `expiry`; each existing wallet gets an opening paid lot
holding its balance; finance gets `wallet.grant_points`."""

import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0008_finance_approves_adjustments"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Allocation",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("amount", models.BigIntegerField()),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.CreateModel(
            name="Lot",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[("paid", "Paid"), ("promotional", "Promotional")], max_length=16
                    ),
                ),
                ("amount", models.BigIntegerField()),
                ("remaining", models.BigIntegerField()),
                ("expires_at", models.DateTimeField(blank=True, null=True)),
                ("campaign", models.CharField(blank=True, default="", max_length=100)),
                ("opening", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["id"],
            },
        ),
        migrations.AlterModelOptions(
            name="wallet",
            options={
                "permissions": [
                    ("deposit_points", "Can credit points after a payment"),
                    ("adjust_points", "Can adjust points with a reason"),
                    ("grant_points", "Can grant promotional points"),
                ]
            },
        ),
        migrations.RemoveConstraint(
            model_name="transaction",
            name="txn_sign_matches_type",
        ),
        migrations.AlterField(
            model_name="transaction",
            name="type",
            field=models.CharField(
                choices=[
                    ("deposit", "Deposit"),
                    ("spend", "Spend"),
                    ("refund", "Refund"),
                    ("transfer_out", "Transfer out"),
                    ("transfer_in", "Transfer in"),
                    ("adjustment", "Adjustment"),
                    ("grant", "Grant"),
                    ("expiry", "Expiry"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="transaction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(
                        ("amount__gt", 0),
                        ("type__in", ["deposit", "refund", "transfer_in", "grant"]),
                    ),
                    models.Q(("amount__lt", 0), ("type__in", ["spend", "transfer_out", "expiry"])),
                    ("type", "adjustment"),
                    _connector="OR",
                ),
                name="txn_sign_matches_type",
            ),
        ),
        migrations.AddConstraint(
            model_name="transaction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("type", "grant"), _negated=True),
                    models.Q(("description", ""), _negated=True),
                    _connector="OR",
                ),
                name="txn_grant_has_reason",
            ),
        ),
        migrations.AddConstraint(
            model_name="transaction",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("type", "expiry"), _negated=True),
                    ("reference_id__isnull", False),
                    _connector="OR",
                ),
                name="txn_expiry_has_reference",
            ),
        ),
        migrations.AddField(
            model_name="allocation",
            name="transaction",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="allocations",
                to="wallet.transaction",
            ),
        ),
        migrations.AddField(
            model_name="lot",
            name="origin",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="continued_by",
                to="wallet.lot",
            ),
        ),
        migrations.AddField(
            model_name="lot",
            name="source",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lots",
                to="wallet.transaction",
            ),
        ),
        migrations.AddField(
            model_name="lot",
            name="wallet",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="lots", to="wallet.wallet"
            ),
        ),
        migrations.AddField(
            model_name="allocation",
            name="lot",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="allocations",
                to="wallet.lot",
            ),
        ),
        migrations.AddIndex(
            model_name="lot",
            index=models.Index(
                condition=models.Q(("remaining__gt", 0)),
                fields=["wallet", "expires_at"],
                name="lot_live",
            ),
        ),
        migrations.AddIndex(
            model_name="lot",
            index=models.Index(
                condition=models.Q(("expires_at__isnull", False), ("remaining__gt", 0)),
                fields=["expires_at"],
                name="lot_expiring",
            ),
        ),
        migrations.AddConstraint(
            model_name="lot",
            constraint=models.CheckConstraint(
                condition=models.Q(("remaining__gte", 0)), name="lot_remaining_non_negative"
            ),
        ),
        migrations.AddConstraint(
            model_name="lot",
            constraint=models.CheckConstraint(
                condition=models.Q(("remaining__lte", models.F("amount"))),
                name="lot_remaining_within_amount",
            ),
        ),
        migrations.AddConstraint(
            model_name="lot",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0), ("opening", True), _connector="OR"),
                name="lot_amount_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="lot",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind", "promotional"), ("expires_at__isnull", True), _connector="OR"
                ),
                name="lot_paid_never_expires",
            ),
        ),
        migrations.AddConstraint(
            model_name="lot",
            constraint=models.CheckConstraint(
                condition=models.Q(("opening", True), ("source__isnull", False), _connector="OR"),
                name="lot_has_source",
            ),
        ),
        migrations.AddConstraint(
            model_name="allocation",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0)), name="allocation_amount_positive"
            ),
        ),
        migrations.AddConstraint(
            model_name="allocation",
            constraint=models.UniqueConstraint(
                fields=("transaction", "lot"), name="allocation_once_per_lot"
            ),
        ),
    ]


def open_lots(apps, schema_editor):
    """Every wallet that exists now gets one paid lot holding its balance (its opening
    lot), so the lots of every wallet sum to its balance from the first day on."""
    Wallet = apps.get_model("wallet", "Wallet")
    Transaction = apps.get_model("wallet", "Transaction")
    Lot = apps.get_model("wallet", "Lot")
    now = timezone.now()
    batch = []
    for wallet in Wallet.objects.order_by("id").iterator(chunk_size=2000):
        newest = (
            Transaction.objects.filter(wallet_id=wallet.pk, status="success")
            .order_by("-id")
            .values_list("id", flat=True)
            .first()
        )
        batch.append(
            Lot(
                wallet_id=wallet.pk,
                kind="paid",
                amount=wallet.balance,
                remaining=wallet.balance,
                source_id=newest,
                opening=True,
                created_at=now,
            )
        )
        if len(batch) >= 2000:
            Lot.objects.bulk_create(batch)
            batch = []
    Lot.objects.bulk_create(batch)


def drop_lots(apps, schema_editor):
    apps.get_model("wallet", "Allocation").objects.all().delete()
    apps.get_model("wallet", "Lot").objects.all().delete()


# Rights this migration adds, by group (tests rebuild groups from these lists too).
ADDED = {"finance": [("wallet", "grant_points")]}


def add_rights(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ADDED.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_rights(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ADDED.items():
        group = Group.objects.filter(name=name).first()
        for app_label, codename in wanted:
            permission = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if group is not None and permission is not None:
                group.permissions.remove(permission)


Migration.operations += [
    migrations.RunPython(open_lots, drop_lots),
    migrations.RunPython(add_rights, remove_rights),
]
