"""`manage.py replay_ledger`: the old name of `repair_balances`, kept as an alias.

It runs `repair_balances` with the same options, output and exit codes, after a
one-line notice on stderr.
"""

from wallet.management.aliases import alias_of
from wallet.management.commands import repair_balances

Command = alias_of(repair_balances.Command, old="replay_ledger", new="repair_balances")
