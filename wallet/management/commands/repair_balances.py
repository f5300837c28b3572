"""`manage.py repair_balances`: recompute wallet balances from the ledger (disaster recovery).

Dry run by default: lists every wallet whose cached balance differs from the sum of its
successful transactions. `--apply` fixes them (after a confirmation, or `--noinput`),
each fix audited on the wallet's chain by `wallet.services.repair_balance`.

Exit codes: 0 nothing to fix (or everything fixed); 1 differences left (dry run,
declined, or a fix refused); 2 bad arguments; 3 the database could not be used.
`replay_ledger` is its old name, kept as an alias.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from tqdm import tqdm

from wallet import services
from wallet.verification import balance_differences


class Command(BaseCommand):
    help = "Recompute balances from the ledger: --dry-run (default) lists, --apply fixes."

    def add_arguments(self, parser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--dry-run", action="store_true", help="Only list differences (default).")
        mode.add_argument("--apply", action="store_true", help="Fix the differences, audited.")
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Do not ask for confirmation before --apply.",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(**options)
        except DatabaseError as exc:
            raise CommandError(f"repair_balances could not run: {exc}", returncode=3) from exc

    def _handle(self, **options: Any) -> None:
        count = 0
        for wallet_id, cached, ledger in balance_differences():
            count += 1
            self.stdout.write(
                f"wallet {wallet_id}: cached balance {cached}, ledger sum {ledger} "
                f"(difference {ledger - cached:+d})"
            )
        if count == 0:
            self.stdout.write(self.style.SUCCESS("OK: every balance equals its ledger sum."))
            return
        if not options["apply"]:
            self.stdout.write(f"{count} wallet(s) differ. Run with --apply to fix them.")
            raise CommandError(f"{count} balance(s) differ from the ledger", returncode=1)
        if options["interactive"] and not self._confirmed(count):
            raise CommandError("Aborted; nothing changed.", returncode=1)
        self._apply(count, progress=not options["no_progress"])

    def _confirmed(self, count: int) -> bool:
        answer = input(f"Reset {count} balance(s) to their ledger sum? Type 'yes' to continue: ")
        return answer.strip().lower() == "yes"

    def _apply(self, count: int, *, progress: bool) -> None:
        repaired, refused = 0, []
        # Re-read the differences: each fix recomputes under the wallet lock anyway.
        wallet_ids = [wallet_id for wallet_id, _, _ in balance_differences()]
        for wallet_id in tqdm(wallet_ids, desc="repairing", unit="wallet", disable=not progress):
            result = services.repair_balance(wallet_id=wallet_id, reason="replay_ledger")
            if result.repaired:
                repaired += 1
                self.stdout.write(
                    f"wallet {wallet_id}: balance {result.cached_balance} -> "
                    f"{result.ledger_balance} (audited)"
                )
            elif result.refused:
                refused.append(wallet_id)
                self.stderr.write(f"wallet {wallet_id}: not repaired: {result.refused}")
        self.stdout.write(self.style.SUCCESS(f"Repaired {repaired} balance(s)."))
        if refused:
            raise CommandError(f"{len(refused)} balance(s) could not be repaired", returncode=1)
