"""Demo users, job types and a few operations. Idempotent: every operation uses a
fixed reference, so running it twice replays instead of doubling the money."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand
from django.db import transaction

from jobs.models import JobType
from wallet import services
from wallet.models import PointPackage
from wallet.permissions import DEPOSIT

DEMO_PASSWORD = "whispers-demo-2026"
# Point packages on sale: (code, name, points, price in cents of USD).
DEMO_PACKAGES = [
    ("starter", "Starter pack", 1000, 999),
    ("seeker", "Seeker pack", 5500, 4999),
    ("oracle", "Oracle pack", 12000, 9999),
]
DEMO_JOB_TYPES = [
    ("fortune", "Fortune reading", 50, "A short Divine Whispers reading for your question."),
    ("tarot", "Three-card tarot", 120, "Past, present and future from a three-card spread."),
    ("horoscope", "Daily horoscope", 20, "Today's horoscope for your sign."),
]
DEMO_USERS = [
    # username, staff, group
    ("alice", False, None),
    ("bob", False, None),
    ("support", True, "support"),
    ("finance", True, "finance"),
    # The payment service account: no staff flag, no staff group, one right of its own.
    ("payments", False, None),
]


class Command(BaseCommand):
    help = "Create demo users (password: whispers-demo-2026), job types and a few operations."

    def handle(self, *args, **options) -> None:
        with transaction.atomic():
            users = {name: self._user(name, staff, group) for name, staff, group in DEMO_USERS}
            self._admin()
            users["payments"].user_permissions.add(_deposit_permission())
            for code, name, price, description in DEMO_JOB_TYPES:
                JobType.objects.get_or_create(
                    code=code, defaults={"name": name, "price": price, "description": description}
                )
        payments = users["payments"]
        finance = users["finance"]
        for code, name, points, price in DEMO_PACKAGES:
            if not PointPackage.objects.filter(code=code).exists():
                package = PointPackage(code=code, name=name, points=points, price=price)
                services.save_package(package=package, actor=finance)
        services.deposit(
            user=users["alice"], amount=1000, reference_id="demo-pay-alice-1", actor=payments
        )
        services.deposit(
            user=users["bob"], amount=500, reference_id="demo-pay-bob-1", actor=payments
        )
        services.spend(user=users["alice"], job_type="fortune", reference_id="demo-spend-alice-1")
        services.transfer(
            sender=users["alice"],
            recipient=users["bob"],
            amount=100,
            reference_id="demo-transfer-alice-bob-1",
            description="Happy birthday, Bob!",
        )
        # A large adjustment waiting for a second person: `admin` asked, so `finance`
        # finds it in Approval requests → "Waiting for my decision".
        services.adjust(
            user=users["bob"],
            amount=25_000,
            reason="Demo: goodwill credit after the November outage",
            actor=get_user_model().objects.get(username="admin"),
            reference_id="demo-approval-bob-1",
        )
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(
            f"Users alice, bob, support, finance, payments and admin, password {DEMO_PASSWORD!r}."
        )
        # Keys are shown once and stored hashed, so the seed prints how to get one rather
        # than issuing keys nobody would see again.
        self.stdout.write(
            "API keys: `manage.py issue_token alice` (prints a key once; "
            "`--expires-in 30d`, `--name LABEL`); `manage.py revoke_tokens alice` revokes."
        )

    def _user(self, username: str, staff: bool, group: str | None):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com", "is_staff": staff}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        if group:
            user.groups.add(Group.objects.get(name=group))
        else:
            # Earlier seeds put `payments` in `finance` as staff: take that back.
            user.groups.clear()
            if user.is_staff != staff:
                user.is_staff = staff
                user.save(update_fields=["is_staff"])
        return user

    def _admin(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)


def _deposit_permission() -> Permission:
    app_label, codename = DEPOSIT.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)
