"""`manage.py fail_stale_pending --older-than 15m`: stale `pending` rows become `failed`.

Audited (a `wallet.pending_failed` event per row on its wallet's chain) and idempotent:
a second run finds nothing to do. Durations: a whole number followed by s, m, h or d.
Exit codes: 0 done (even when nothing was stale); 2 bad arguments; 3 database error.
`cleanup_pending` is its old name, kept as an alias (the contract names it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from divine_whispers import durations
from wallet import services


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '7d' → timedelta; anything else (or zero) is refused."""
    try:
        return durations.parse_duration(text)
    except ValueError as exc:
        raise CommandError(f"--older-than {exc}", returncode=2) from exc


class Command(BaseCommand):
    help = "Turn pending transactions older than --older-than (e.g. 15m) into failed ones."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than", default="15m", help="Age threshold: 90s, 15m, 2h, 7d (default 15m)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count the stale pending rows."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        age = parse_duration(options["older_than"])
        try:
            if options["dry_run"]:
                stale = services.stale_pending(timezone.now() - age).count()
                self.stdout.write(f"{stale} pending transaction(s) older than {age} (dry run).")
                return
            failed = services.fail_stale_pending(older_than=age)
        except DatabaseError as exc:
            raise CommandError(f"fail_stale_pending could not run: {exc}", returncode=3) from exc
        self.stdout.write(
            self.style.SUCCESS(f"Failed {failed} pending transaction(s) older than {age}.")
        )
