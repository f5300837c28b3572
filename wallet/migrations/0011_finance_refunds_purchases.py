"""Buying points in the back-office: finance edits point packages, reads purchases and the
webhook inbox, replays an event and refunds purchases through the payment provider
(`wallet.refund_purchase`); support reads purchases and the inbox only (a purchase refund
returns real money)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Rights this migration adds, by group (tests rebuild groups from these lists too).
_READ = [("wallet", "view_purchase"), ("wallet", "view_providerevent"), ("wallet", "view_clawback")]
ADDED = {
    "finance": [
        *_READ,
        ("wallet", "refund_purchase"),
        ("wallet", "view_pointpackage"),
        ("wallet", "add_pointpackage"),
        ("wallet", "change_pointpackage"),
        ("wallet", "change_providerevent"),
    ],
    "support": _READ,
}


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


class Migration(migrations.Migration):
    dependencies = [("wallet", "0010_purchases")]

    operations = [migrations.RunPython(add_rights, remove_rights)]
