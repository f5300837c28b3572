"""Grants through the four-eyes approvals: a request says what it books (an adjustment or
a grant) and carries a grant's own expiry and campaign."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('wallet', '0011_finance_refunds_purchases'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='approvalrequest',
            name='campaign',
            field=models.CharField(blank=True, default='', max_length=100),
        ),
        migrations.AddField(
            model_name='approvalrequest',
            name='grant_expires_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='approvalrequest',
            name='kind',
            field=models.CharField(choices=[('adjustment', 'Adjustment'), ('grant', 'Grant')], default='adjustment', max_length=16),
        ),
        migrations.AddConstraint(
            model_name='approvalrequest',
            constraint=models.CheckConstraint(condition=models.Q(('kind', 'adjustment'), ('amount__gt', 0), _connector='OR'), name='approval_grant_positive'),
        ),
    ]
