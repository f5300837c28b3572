"""Job types: a price is what users are charged, so every change is audited.

`save_job_type` is the only writer of a job type's price (the admin calls it): the
price and its `jobtype.price_changed` audit event commit together or not at all.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from audit.models import AuditEvent
from audit.services import record_system_event
from divine_whispers.money import validate_positive_amount
from jobs.models import JobType

PRICE_CHANGED_ACTION = "jobtype.price_changed"


def save_job_type(*, job_type: JobType, actor: AbstractBaseUser | None) -> AuditEvent | None:
    """Save a job type; a new or changed price writes a `jobtype.price_changed` event.

    The row is locked while the old price is read, so two staff members editing the
    same job type record two consecutive changes (old → new) instead of both claiming
    the same old price. The event is written in the save's DB transaction: either the
    price and its audit event commit together, or neither does. A new job type counts
    as a price change from `None`, so every price users were ever charged is audited.
    """
    new_price = validate_positive_amount(
        job_type.price, maximum=settings.WALLET_MAX_TRANSACTION_AMOUNT, field="price"
    )
    with transaction.atomic():
        old_price = None
        if job_type.pk is not None:
            old_price = (
                JobType.objects.select_for_update()
                .filter(pk=job_type.pk)
                .values_list("price", flat=True)
                .first()
            )
        job_type.save()
        if old_price == new_price:
            return None
        return record_system_event(
            action=PRICE_CHANGED_ACTION,
            actor=actor,
            metadata={"code": job_type.code, "old": old_price, "new": new_price},
        )
