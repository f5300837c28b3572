from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("wallet", "0002_staff_groups"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="transaction",
            index=models.Index(
                condition=models.Q(("status", "success"), ("type__in", ["spend", "transfer_out"])),
                fields=["wallet", "created_at"],
                name="txn_velocity",
            ),
        ),
    ]
