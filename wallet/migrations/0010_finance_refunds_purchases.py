"""Finance staff refund purchases through the payment provider: the group gets
`wallet.refund_purchase`. Support does not (a purchase refund returns real money)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Rights this migration adds, by group (tests rebuild groups from these lists too).
ADDED = {"finance": [("wallet", "refund_purchase")]}


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
    dependencies = [("wallet", "0009_purchases")]

    operations = [migrations.RunPython(add_rights, remove_rights)]
