"""`manage.py simulate --seed S --ops N --workers W`: a reproducible random workload
from W processes against this database, then every invariant. See
the wallet/management/simulation/ package."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from tqdm import tqdm

from wallet.management.simulation import run_simulation


def _logging_acks(
    ack_log: TextIO, inner: Callable[[Iterable[dict], int], Iterable[dict]] | None
) -> Callable[[Iterable[dict], int], Iterable[dict]]:
    """Wraps the outcome stream: each answer is written (and flushed) when it arrives."""

    def progress(results: Iterable[dict], total: int) -> Iterator[dict]:
        for outcome in inner(results, total) if inner else results:
            ack_log.write(json.dumps(outcome, sort_keys=True) + "\n")
            ack_log.flush()
            yield outcome

    return progress


class Command(BaseCommand):
    help = (
        "Run a seeded random workload of every money operation (duplicates, bad inputs, races "
        "on one wallet) from several processes on scratch users, then check every invariant. "
        "Writes to the configured database: scratch users sim-<seed>-<tag>-* stay, deactivated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=None, help="default: random (printed)")
        parser.add_argument("--ops", type=int, default=1000, help="operations (default 1000)")
        parser.add_argument("--workers", type=int, default=4, help="processes (default 4)")
        parser.add_argument(
            "--velocity-limit",
            type=int,
            default=1_000_000,
            help="WALLET_VELOCITY_LIMIT inside the workers (default: lifted so money paths "
            "run; pass the configured value to include velocity refusals)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--ack-log",
            metavar="FILE",
            help="append one JSON line per operation as its answer arrives (status, and the "
            "ids of the ledger rows it was told about): what the load generator was told, "
            "for a restore drill to compare with the database",
        )

    def handle(self, *args, **options) -> None:
        seed = options["seed"]
        if seed is None:
            import secrets

            seed = secrets.randbelow(2**31)
        ops, workers = options["ops"], options["workers"]
        if ops < 1 or workers < 1:
            raise CommandError("--ops and --workers must be at least 1")
        self.stdout.write(
            f"simulate: seed={seed} ops={ops} workers={workers} "
            f"database={connection.settings_dict['NAME']}"
        )
        started = time.monotonic()
        progress = None if options["no_progress"] else self._progress
        with contextlib.ExitStack() as stack:
            if options["ack_log"]:
                ack_log = stack.enter_context(open(options["ack_log"], "a", encoding="utf-8"))
                progress = _logging_acks(ack_log, progress)
            report = run_simulation(
                seed=seed,
                ops=ops,
                workers=workers,
                overrides={"WALLET_VELOCITY_LIMIT": options["velocity_limit"]},
                progress=progress,
            )
        elapsed = time.monotonic() - started
        self._print_report(report, elapsed)
        if report.violations:
            raise CommandError(f"{len(report.violations)} violation(s) (seed {seed})")

    def _progress(self, results, total):
        return tqdm(results, total=total, desc="operations", unit="op", file=self.stderr._out)

    def _print_report(self, report, elapsed: float) -> None:
        w = self.stdout.write
        w(f"seed {report.seed}  plan {report.digest}  run tag {report.tag}")
        w(f"{len(report.outcomes)} operations in {elapsed:.1f}s from {report.workers} workers")
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, status), n in sorted(report.counts.items()):
            by_kind.setdefault(kind, {})[status] = n
        for kind, statuses in by_kind.items():
            parts = "  ".join(f"{status}={n}" for status, n in sorted(statuses.items()))
            w(f"  {kind:<28} {parts}")
        if report.codes:
            w(
                "refusals and crashes: "
                + ", ".join(f"{c}={n}" for c, n in sorted(report.codes.items()))
            )
        if not report.violations:
            w(self.style.SUCCESS("invariants: OK, 0 violations"))
            return
        w(self.style.ERROR(f"invariants: {len(report.violations)} VIOLATION(S)"))
        for violation in report.violations:
            w(self.style.ERROR(f"  - {violation.what}"))
            if violation.user_indexes:
                w("    operations that led to it (last ones touching those wallets):")
                for line in report.ops_touching(violation):
                    w(line)
