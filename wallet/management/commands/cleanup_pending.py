"""`manage.py cleanup_pending`: the old name of `fail_stale_pending`, kept as an alias.

The contract and existing cron jobs name `cleanup_pending --older-than 15m`; it runs
`fail_stale_pending` with the same options, output and exit codes, after a one-line
notice on stderr.
"""

from __future__ import annotations

from typing import Any

from wallet.management.commands import fail_stale_pending


class Command(fail_stale_pending.Command):
    help = (
        "Old name of fail_stale_pending (same options, output and exit codes): "
        + fail_stale_pending.Command.help
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write("cleanup_pending is the old name of fail_stale_pending; running that.")
        super().handle(*args, **options)
