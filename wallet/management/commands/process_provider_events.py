"""`manage.py process_provider_events`: retry the payment provider's webhook events whose
processing did not finish (the provider was down, an error), oldest first.

Safe to run any time, beside the webhook and the worker (which runs the same retry):
every effect is keyed, so an event processed twice changes nothing twice.
Exit codes: 0 done (even with nothing to do), 1 some events still failed, 3 database error.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from wallet import services


class Command(BaseCommand):
    help = "Retry the provider's webhook events whose processing failed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=500, help="At most this many events.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            counts = services.process_pending_events(limit=options["limit"])
        except DatabaseError as exc:
            raise CommandError(
                f"process_provider_events could not run: {exc}", returncode=3
            ) from exc
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing"
        self.stdout.write(f"Provider events retried: {summary}.")
        if counts.get("failed"):
            raise CommandError(f"{counts['failed']} event(s) still failed", returncode=1)
