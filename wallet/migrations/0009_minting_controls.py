"""Minting controls: `wallet.deposit_points` leaves every staff group and every staff
member (it is the payment service account's alone), and the ledger gets the index the
cumulative approval threshold reads (one staff member's recent credits).

A group counts as a staff group when it is `support` or `finance`, or when any member is
staff or a superuser; a group of service accounts only (say, `payments`) keeps the right.
"""

from django.db import migrations, models
from django.db.models import Q

DEPOSIT = ("wallet", "deposit_points")
STAFF_GROUPS = ["support", "finance"]
# Rights this migration takes, by group (tests rebuild groups from these lists too).
TAKEN = {name: [DEPOSIT] for name in STAFF_GROUPS}


def _deposit_permission(apps):
    Permission = apps.get_model("auth", "Permission")
    app_label, codename = DEPOSIT
    return Permission.objects.filter(
        content_type__app_label=app_label, codename=codename
    ).first()


def take_deposit_from_staff(apps, schema_editor):
    permission = _deposit_permission(apps)
    if permission is None:  # a fresh database: permissions come after the migrations
        return
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("auth", "User")
    staff = Q(is_staff=True) | Q(is_superuser=True)
    staff_groups = Group.objects.filter(
        Q(name__in=STAFF_GROUPS) | Q(user__in=User.objects.filter(staff))
    ).distinct()
    for group in staff_groups:
        group.permissions.remove(permission)
    for user in User.objects.filter(staff, user_permissions=permission):
        user.user_permissions.remove(permission)


def give_deposit_back_to_finance(apps, schema_editor):
    permission = _deposit_permission(apps)
    group = apps.get_model("auth", "Group").objects.filter(name="finance").first()
    if permission is not None and group is not None:
        group.permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0008_finance_approves_adjustments"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(take_deposit_from_staff, give_deposit_back_to_finance),
        migrations.AddIndex(
            model_name="transaction",
            index=models.Index(
                condition=Q(amount__gt=0, actor__isnull=False),
                fields=["actor", "created_at"],
                name="txn_credit_by_actor",
            ),
        ),
    ]
