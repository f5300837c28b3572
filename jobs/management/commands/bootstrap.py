"""`manage.py bootstrap --from FILE`: a fresh service's first users, keys and job types.

Thin: jobs.services.bootstrap_plan reads and checks the TOML file, jobs.services.bootstrap
applies it in one transaction. Idempotent: a second run with the same file changes
nothing and issues no key.

Output: every new API key on stdout, one line `USERNAME KEY_NAME KEY` (shown once, like
`issue_token`: only its digest is stored), and nothing else there, so the keys can be
piped straight into a secrets manager; what was created or found goes to stderr.
Exit codes: 0 done (or nothing to do), 2 a bad file (nothing written).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.services.bootstrap import apply_plan
from jobs.services.bootstrap_plan import PlanError, load_plan


class Command(BaseCommand):
    help = (
        "Create the superuser, staff users, service accounts (with a long-lived API key, "
        "printed once on stdout) and job types a TOML file declares. Idempotent."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--from",
            dest="path",
            required=True,
            metavar="FILE",
            help="the bootstrap file (TOML; example: deploy/bootstrap.example.toml)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            outcome = apply_plan(load_plan(options["path"]))
        except PlanError as exc:
            raise CommandError(f"bootstrap refused, nothing written: {exc}", returncode=2) from exc
        for line in outcome.lines:
            self.stderr.write(line)
        for new in outcome.keys:
            self.stdout.write(f"{new.username} {new.name} {new.key}")
        self.stderr.write(
            f"bootstrap: {outcome.changes} change(s)"
            + (f", {len(outcome.keys)} new key(s) on stdout" if outcome.keys else "")
        )
