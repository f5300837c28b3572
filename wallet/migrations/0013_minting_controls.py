"""Minting controls: `wallet.deposit_points` leaves every staff group and every staff
member (it is the payment service account's alone), the ledger gets the index the
cumulative approval threshold reads (one staff member's recent credits), and the
database refuses self-dealing too: no adjustment or deposit booked by its own wallet's
owner, no approval request asked or decided by the owner of its wallet.

On PostgreSQL the CHECKs are added `NOT VALID`: they hold for every new or changed row,
but a database that already holds a row the rule now forbids (booked before it existed)
still migrates; `verify_ledger` is not the place for it, the audit trail already names it.

A group counts as a staff group when it is `support` or `finance`, or when any member is
staff or a superuser; a group of service accounts only (say, `payments`) keeps the right.
"""

from django.db import migrations, models
from django.db.models import F, Q

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


GUARDS = [
    (
        "transaction",
        models.CheckConstraint(
            condition=~Q(type__in=["adjustment", "deposit", "grant"], actor=F("user")),
            name="txn_no_self_credit",
        ),
    ),
    (
        "approvalrequest",
        models.CheckConstraint(
            condition=~Q(requested_by=F("user")), name="approval_not_asked_by_owner"
        ),
    ),
    (
        "approvalrequest",
        models.CheckConstraint(
            condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("user")),
            name="approval_not_decided_by_owner",
        ),
    ),
]


def add_guards(apps, schema_editor):
    for model_name, constraint in GUARDS:
        model = apps.get_model("wallet", model_name)
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.add_constraint(model, constraint)
            continue
        table = schema_editor.quote_name(model._meta.db_table)
        check = constraint.constraint_sql(model, schema_editor)
        schema_editor.execute(f"ALTER TABLE {table} ADD {check} NOT VALID")


def drop_guards(apps, schema_editor):
    for model_name, constraint in GUARDS:
        schema_editor.remove_constraint(apps.get_model("wallet", model_name), constraint)


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0012_promo_grants"),
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
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(add_guards, drop_guards)],
            state_operations=[
                migrations.AddConstraint(model_name=model_name, constraint=constraint)
                for model_name, constraint in GUARDS
            ],
        ),
    ]
