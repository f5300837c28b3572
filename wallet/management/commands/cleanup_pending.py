"""`manage.py cleanup_pending`: the old name of `fail_stale_pending`, kept as an alias.

The contract and existing cron jobs name `cleanup_pending --older-than 15m`; it runs
`fail_stale_pending` with the same options, output and exit codes, after a one-line
notice on stderr.
"""

from wallet.management.aliases import alias_of
from wallet.management.commands import fail_stale_pending

Command = alias_of(fail_stale_pending.Command, old="cleanup_pending", new="fail_stale_pending")
