"""The finance report: a proxy model (no table) carrying the permission
`wallet.view_report`, given to the `finance` group (contract: "Reports")."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REPORT_PERMISSION = ("wallet", "view_report")
GROUP = "finance"


def grant_report_to_finance(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure this one exists.
    app_config = apps.get_app_config("wallet")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    app_label, codename = REPORT_PERMISSION
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )


def revoke_report(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    app_label, codename = REPORT_PERMISSION
    for group in Group.objects.filter(name=GROUP):
        group.permissions.remove(
            *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0003_txn_velocity_index"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.CreateModel(
            name="FinanceReport",
            fields=[],
            options={
                "verbose_name": "finance report",
                "verbose_name_plural": "finance report",
                "permissions": [("view_report", "Can view the daily finance report")],
                "proxy": True,
                "default_permissions": (),
                "indexes": [],
                "constraints": [],
            },
            bases=("wallet.transaction",),
        ),
        migrations.RunPython(grant_report_to_finance, revoke_report),
    ]
