"""`manage.py expire_points`: book the expiry of every lot past its `expires_at` now.

The worker's sweep runs the same service (wallet.services.expire_points) every pass;
this command is for operators and cron. Safe to run next to the worker or twice at once:
each lot's expiry is booked exactly once.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from wallet import services


class Command(BaseCommand):
    help = "Book one expiry row per lot past its expiry that still holds points."

    def handle(self, *args, **options) -> None:
        run = services.expire_points()
        self.stdout.write(
            f"expired {run.points:,d} point(s): {len(run.rows)} lot(s) in {run.wallets} wallet(s)"
        )
