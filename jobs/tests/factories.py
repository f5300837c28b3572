from __future__ import annotations

import factory

from jobs.models import JobType


class JobTypeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobType
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"reading-{n}")
    name = factory.LazyAttribute(lambda job_type: job_type.code.title())
    price = 10
    active = True
