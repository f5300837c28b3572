"""Creates the `support` and `finance` groups with the contract's rights."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_PERMISSIONS = [
    ("wallet", "view_wallet"),
    ("wallet", "view_transaction"),
    ("wallet", "refund_transaction"),
    ("audit", "view_auditevent"),
    ("jobs", "view_job"),
    ("jobs", "view_jobtype"),
]
FINANCE_PERMISSIONS = SUPPORT_PERMISSIONS + [
    ("wallet", "adjust_points"),
    ("wallet", "deposit_points"),
    ("jobs", "change_jobtype"),
]
GROUPS = {"support": SUPPORT_PERMISSIONS, "finance": FINANCE_PERMISSIONS}


def create_groups(apps, schema_editor):
    # Permissions are normally created after all migrations; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, codename in wanted:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0001_initial"),
        ("audit", "0001_initial"),
        ("jobs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
