"""`manage.py verify_ledger`: prove the ledger and the audit chains are intact (read-only).

Exit codes: 0 clean; 1 findings (each one printed / in the JSON report);
2 bad arguments (or an unreadable checkpoint file); 3 the check could not run (e.g. the
database is unreachable).

The ledger's invariants are `wallet.verification`'s, the audit chains and checkpoints
`audit.verification`'s: this command composes both.

`--json` includes a checkpoint (each audit chain's length and head); keep it away from
the database host and pass it back with `--checkpoint FILE` to prove that no chain was
truncated or rewritten behind it. Each run's result is recorded (a LedgerVerification
row, its own short transaction after the read-only check) so `/metrics` can report it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.models import LedgerVerification
from audit.verification import DEFAULT_CHUNK_SIZE, Report, parse_checkpoint
from divine_whispers.db.bounds import process_bounds
from wallet.verification import verify_ledger


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
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="No progress bars (they are off anyway when stderr is not a terminal).",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="A checkpoint (or a whole --json report) saved earlier: every chain must "
            "still hold its recorded head at the recorded position.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1", returncode=2)
        checkpoint = self._load_checkpoint(options["checkpoint"])
        try:
            # DATABASE_VERIFY_LEDGER_TIMEOUT_SECONDS: a full pass over a large ledger.
            with process_bounds("verify_ledger"):
                report = verify_ledger(
                    chunk_size=options["chunk_size"],
                    progress=not options["no_progress"] and _is_terminal(sys.stderr),
                    stream=sys.stderr,
                    checkpoint=checkpoint,
                )
        except DatabaseError as exc:
            raise CommandError(f"verify_ledger could not run: {exc}", returncode=3) from exc
        self._record(report, checkpoint_checked=checkpoint is not None)
        if options["json"]:
            document = report.as_dict()
            if report.checkpoint_checked is not None:
                document["checkpoint_checked"]["file"] = options["checkpoint"]
            self.stdout.write(json.dumps(document, indent=2, default=str))
        else:
            self._print_summary(report, options["checkpoint"])
        if not report.clean:
            raise CommandError(f"{len(report.findings)} finding(s)", returncode=1)

    def _load_checkpoint(self, path: str | None) -> dict | None:
        if path is None:
            return None
        try:
            with open(path, encoding="utf-8") as handle:
                return parse_checkpoint(json.load(handle))
        except (OSError, ValueError) as exc:  # CheckpointError and JSONDecodeError included
            raise CommandError(f"cannot use checkpoint {path}: {exc}", returncode=2) from exc

    def _record(self, report: Report, *, checkpoint_checked: bool) -> None:
        """Where the server can report it; a read-only database only costs a warning."""
        try:
            with transaction.atomic():
                LedgerVerification.objects.create(
                    result=LedgerVerification.Result.OK
                    if report.clean
                    else LedgerVerification.Result.FINDINGS,
                    finished_at=timezone.now(),
                    finding_count=len(report.findings),
                    seconds=report.seconds,
                    checkpoint_checked=checkpoint_checked,
                )
        except DatabaseError as exc:
            self.stderr.write(f"warning: could not record this run for /metrics: {exc}")

    def _print_summary(self, report: Report, checkpoint_file: str | None) -> None:
        counts = report.counts
        self.stdout.write(
            f"Checked {counts['wallets']} wallets, {counts['transactions']} transactions, "
            f"{counts['audit_events']} audit events in {report.seconds:.1f}s."
        )
        if report.checkpoint_checked is not None:
            checked = report.checkpoint_checked
            verdict = (
                "every chain still holds its recorded head"
                if checked["held"]
                else "it does NOT hold (see the findings)"
            )
            self.stdout.write(
                f"Checkpoint {checkpoint_file}: {checked['chains']} chain(s) checked, {verdict}."
            )
        if report.clean:
            self.stdout.write(self.style.SUCCESS("OK: the ledger and all audit chains are intact."))
            return
        self.stdout.write(self.style.ERROR(f"FOUND {len(report.findings)} problem(s):"))
        for finding in report.findings:
            self.stdout.write(f"  {finding.line()}")


def _is_terminal(stream: Any) -> bool:
    """Progress bars only for a person watching: not in cron mail, CI logs or a pipe."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
