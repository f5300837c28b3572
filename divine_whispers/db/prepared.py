"""Statements PostgreSQL parses and plans once per connection, not on every request.

Django's psycopg cursors bind client-side and never prepare, so that a transaction-mode
pooler keeps working. For the few statements every API request runs — the API key
lookup, the balance read, the spend's two statements — parsing and planning cost the
database more CPU than running them (bench/cpu_split.py: PostgreSQL's CPU per HTTP spend
against the minimal WSGI app's, which prepares). `prepared_cursor` gives a Django cursor
(error translation, query logging, the execute wrappers: bounds and watchdog) over a
psycopg cursor that binds server-side and prepares each statement on first use per
connection; behind a transaction pooler (DATABASE_TRANSACTION_POOLING) the same cursor
binds its statements unnamed and never prepares — a named statement would be left on one
server connection and be missing, or already exist, on the next.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.db.backends.base.base import BaseDatabaseWrapper


class _Bound:
    """Binds server-side, preparing each statement on first use or never (`PREPARE`), and
    keeps the statement where Django's query log looks for it (`cursor._query`, which
    psycopg sets for client-side cursors only): DEBUG's `connection.queries` and the tests'
    query captures show it, with `$n` placeholders (the values are bound apart)."""

    PREPARE: bool

    def execute(self, query, params=None, *, prepare: bool | None = None, binary=None):
        return super().execute(query, params, prepare=self.PREPARE, binary=binary)

    def _convert_query(self, query, params=None):
        self._query = converted = super()._convert_query(query, params)
        return converted


class _Prepared(_Bound, psycopg.Cursor):  # `%s` placeholders
    PREPARE = True


class _Unprepared(_Bound, psycopg.Cursor):
    PREPARE = False


class _PreparedRaw(_Bound, psycopg.RawCursor):  # PostgreSQL's own `$n` placeholders
    PREPARE = True


class _UnpreparedRaw(_Bound, psycopg.RawCursor):
    PREPARE = False


def prepared_cursor(connection: BaseDatabaseWrapper, *, dollar_placeholders: bool = False) -> Any:
    """A Django cursor over a preparing psycopg cursor, in the connection's current
    transaction (`dollar_placeholders`: the SQL uses `$1…` instead of `%s`)."""
    connection.ensure_connection()
    raw = connection.connection
    if settings.DATABASE_TRANSACTION_POOLING:
        cursor_class = _UnpreparedRaw if dollar_placeholders else _Unprepared
        return connection._prepare_cursor(cursor_class(raw))
    if raw.prepare_threshold is None:
        # Django switches psycopg's preparing off (for transaction poolers); an explicit
        # prepare needs it on. This threshold is never reached, so every other query
        # stays unprepared exactly as before.
        raw.prepare_threshold = 2**31
    cursor_class = _PreparedRaw if dollar_placeholders else _Prepared
    return connection._prepare_cursor(cursor_class(raw))
