"""`manage.py replay_ledger`: the old name of `repair_balances`, kept as an alias.

It runs `repair_balances` with the same options, output and exit codes, after a
one-line notice on stderr.
"""

from __future__ import annotations

from typing import Any

from wallet.management.commands import repair_balances


class Command(repair_balances.Command):
    help = (
        "Old name of repair_balances (same options, output and exit codes): "
        + repair_balances.Command.help
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write("replay_ledger is the old name of repair_balances; running that.")
        super().handle(*args, **options)
