"""factory-boy factories. Money only ever enters a wallet through the services."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from jobs.tests.factories import JobTypeFactory  # noqa: F401  (re-exported for convenience)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password("pw-for-tests-123")


class StaffFactory(UserFactory):
    is_staff = True
