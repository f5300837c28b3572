"""Querysets compiled to SQL once per process, run with each call's values.

The ORM compiles a queryset to SQL every time it is evaluated. For the one-row lookups
that every API request makes — the API key with its user, the caller's wallet — the
compilation costs more CPU than running the query (the production server's profile:
about 60 % of token authentication). A `CompiledQuery` compiles its queryset once per
database alias, then runs the same SQL through a Django cursor (query logging, execute
wrappers, error translation, `django_assert_num_queries` all still apply) that has
PostgreSQL prepare it once per connection (divine_whispers/db/prepared.py), and builds the
instances exactly as the ORM does: `Model.from_db`, the field converters, the
`select_related` populators.

The queryset is built from sentinel values that are then located among the compiled
parameters, so the SQL and the parameter order are the ORM's own: no hand-written SQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import get_related_populators

from divine_whispers.db.prepared import prepared_cursor


class _Compiled:
    """The SQL of one queryset shape on one database, and how to turn a row into objects."""

    def __init__(self, queryset: QuerySet, placeholders: dict[str, Any], using: str) -> None:
        compiler = queryset.query.get_compiler(using=using)
        self.sql, params = compiler.as_sql()
        self.params = [_which(value, placeholders) for value in params]
        select, klass_info = compiler.select, compiler.klass_info
        self.compiler = compiler
        self.converters = compiler.get_converters([column[0] for column in select])
        self.using = using
        if klass_info is None:  # a values_list() query: rows, no instances
            return
        self.model = klass_info["model"]
        fields = klass_info["select_fields"]
        self.start, self.end = fields[0], fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.populators = get_related_populators(klass_info, select, using)

    def values(self, rows: list[tuple]) -> list[tuple]:
        """Rows as a values_list() queryset returns them (the fields' converters applied)."""
        if self.converters:
            return [tuple(row) for row in self.compiler.apply_converters(rows, self.converters)]
        return rows

    def run(self, values: dict[str, Any], fetch: Callable[[Any], Any]) -> Any:
        """Execute with each placeholder's value in its place; `fetch` reads the answer."""
        params = [values[name] if name else constant for name, constant in self.params]
        with prepared_cursor(connections[self.using]) as cursor:
            cursor.execute(self.sql, params)
            return fetch(cursor)

    def instance(self, row: tuple) -> Model:
        if self.converters:
            row = next(iter(self.compiler.apply_converters([list(row)], self.converters)))
        obj = self.model.from_db(self.using, self.init_list, row[self.start : self.end])
        for populator in self.populators:
            populator.populate(row, obj)
        return obj


def _which(value: Any, placeholders: dict[str, Any]) -> tuple[str | None, Any]:
    """(placeholder name, None) for a sentinel, else (None, the constant itself)."""
    names = [name for name, sentinel in placeholders.items() if value == sentinel]
    if len(names) > 1:
        raise ValueError(f"placeholders {names} share a value; give each a distinct one")
    return (names[0], None) if names else (None, value)


class CompiledQuery:
    """`build(**placeholders)` is a queryset, compiled once.

    `placeholders` maps each parameter name to a sentinel of the right type that appears
    nowhere else in the query (e.g. `user_id=-7`); `first(**values)` runs the compiled SQL
    of a model queryset with `values` in their places and returns the first instance
    (select_related included), or None; `rows(**values)` runs a `values_list()` queryset
    and returns all its rows.
    """

    def __init__(self, build: Callable[..., QuerySet], **placeholders: Any) -> None:
        self.build = build
        self.placeholders = placeholders
        self._compiled: dict[tuple[str, bool], _Compiled] = {}

    def _for(self, using: str, *, one_row: bool = True) -> _Compiled:
        compiled = self._compiled.get((using, one_row))
        if compiled is None:
            queryset = self.build(**self.placeholders)
            if one_row:
                queryset = queryset.order_by()[:1]
            compiled = _Compiled(queryset, self.placeholders, using)
            missing = set(self.placeholders) - {name for name, _ in compiled.params}
            if missing:
                raise ValueError(f"placeholders {sorted(missing)} are not in the query")
            self._compiled[using, one_row] = compiled
        return compiled

    def first(self, using: str = DEFAULT_DB_ALIAS, **values: Any) -> Model | None:
        if connections[using].vendor != "postgresql":
            # SQLite (the `make run` default) adapts datetimes to text while compiling, so
            # a datetime sentinel is not found among the parameters; the plain ORM is as
            # correct there, and speed is measured on PostgreSQL only.
            return self.build(**values).order_by().first()
        compiled = self._for(using)
        row = compiled.run(values, lambda cursor: cursor.fetchone())
        return None if row is None else compiled.instance(row)

    def rows(self, using: str = DEFAULT_DB_ALIAS, **values: Any) -> list[tuple]:
        if connections[using].vendor != "postgresql":  # as in first()
            return list(self.build(**values))
        compiled = self._for(using, one_row=False)
        return compiled.values(compiled.run(values, lambda cursor: cursor.fetchall()))
