"""Django's PostgreSQL backend, made safe behind a transaction-mode pooler (PgBouncer).

The one difference is where `QuerySet.iterator()` reads from. Django opens a server-side
cursor for it; outside a transaction (autocommit) that cursor is `WITH HOLD` and outlives
its transaction, so behind a transaction pooler the next FETCH may reach a server
connection that has never heard of it. Here, outside a transaction the rows are fetched
client-side instead; inside one (`transaction.atomic()`, as the streamed CSV exports and
`verify_ledger` read) the server-side cursor is kept: it lives and dies within the
transaction, on one server connection, and memory stays constant however many rows.
Django's own switch, DISABLE_SERVER_SIDE_CURSORS, would give up the latter everywhere.
Built on the bounded engine, with the database bounds set per transaction (SET LOCAL).
"""

from __future__ import annotations

from divine_whispers.db.bounded_postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
    # PgBouncer forwards no `options` startup parameter: every transaction sets its bounds
    # with SET LOCAL instead (divine_whispers/db/bounded_postgresql/base.py).
    session_carries_bounds = False

    def create_cursor(self, name=None):
        if name and self.connection.autocommit:
            name = None  # a WITH HOLD cursor would outlive the transaction: fetch client-side
        return super().create_cursor(name)
