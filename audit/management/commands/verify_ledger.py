"""`manage.py verify_ledger`: prove the ledger and the audit chains are intact (read-only).

Exit codes: 0 clean; 1 findings (each one printed / in the JSON report);
2 bad arguments; 3 the check could not run (e.g. the database is unreachable).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit.verification import DEFAULT_CHUNK_SIZE, Report, verify_ledger


class Command(BaseCommand):
    help = (
        "Verify the ledger and the audit hash chains (read-only). Exit 0 when clean, "
        "1 with every finding named, 3 when the check could not run."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print a JSON report on stdout.")
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=DEFAULT_CHUNK_SIZE,
            help="Audit events fetched per round trip (memory vs. speed).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1", returncode=2)
        try:
            report = verify_ledger(
                chunk_size=options["chunk_size"],
                progress=not options["no_progress"],
                stream=sys.stderr,
            )
        except DatabaseError as exc:
            raise CommandError(f"verify_ledger could not run: {exc}", returncode=3) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self._print_summary(report)
        if not report.clean:
            raise CommandError(f"{len(report.findings)} finding(s)", returncode=1)

    def _print_summary(self, report: Report) -> None:
        counts = report.counts
        self.stdout.write(
            f"Checked {counts['wallets']} wallets, {counts['transactions']} transactions, "
            f"{counts['audit_events']} audit events in {report.seconds:.1f}s."
        )
        if report.clean:
            self.stdout.write(self.style.SUCCESS("OK: the ledger and all audit chains are intact."))
            return
        self.stdout.write(self.style.ERROR(f"FOUND {len(report.findings)} problem(s):"))
        for finding in report.findings:
            self.stdout.write(f"  {finding.line()}")
