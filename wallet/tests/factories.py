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


class PaymentAccountFactory(UserFactory):
    """The payment service account: not staff, holding `wallet.deposit_points` alone (the
    only account that may deposit, see wallet/services/_minting.py)."""

    username = "payments"

    @factory.post_generation
    def deposit_right(self, create: bool, extracted, **kwargs) -> None:
        if create:
            from django.contrib.auth.models import Permission

            self.user_permissions.add(
                Permission.objects.get(content_type__app_label="wallet", codename="deposit_points")
            )


def payment_account():
    """The one payment service account of a test (created on first use: create it before
    starting threads that use it)."""
    existing = get_user_model().objects.filter(username="payments").first()
    return existing if existing is not None else PaymentAccountFactory()
