"""How the fast path's raw statements are written and sent: SQL text written together
with the value of each placeholder, the INSERT shape of a model, and cursors that bind
server-side and prepare each statement once per connection.

Private to the wallet.services package: only wallet/services/_fast_path.py uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.db import connections, models

from divine_whispers.db.prepared import prepared_cursor as _prepared_cursor


@dataclass(frozen=True)
class Prepared:
    """A statement's text (`$n` placeholders) and what each placeholder takes, in order:
    a tuple of value names, or the index of a row whose field values go there."""

    sql: str
    plan: tuple[tuple[str, ...] | int, ...]

    def params(self, values: dict[str, Any], rows: Sequence[list] = ()) -> list[Any]:
        params: list[Any] = []
        for part in self.plan:
            if isinstance(part, int):
                params += rows[part]
            else:
                params += [values[name] for name in part]
        return params


class Statement:
    """SQL text written together with the value each of its `%s` placeholders takes,
    so the order of a statement's parameters is stated once, beside the text."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._plan: list[tuple[str, ...] | int] = []

    def add(self, text: str, *names: str) -> Statement:
        if text.count("%s") != len(names):
            raise ValueError(f"{text!r} has {text.count('%s')} placeholders, not {len(names)}")
        self._text.append(text)
        if names:
            self._plan.append(names)
        return self

    def add_row(self, index: int, text: str) -> Statement:
        """Text whose placeholders take the field values of row `index`."""
        self._text.append(text)
        self._plan.append(index)
        return self

    def build(self) -> Prepared:
        return Prepared(_numbered("".join(self._text)), tuple(self._plan))


def _numbered(sql: str) -> str:
    """`%s` placeholders to PostgreSQL's `$1`, `$2`, … (once per statement shape)."""
    parts = sql.split("%s")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], start=1))


_PLAIN_FIELDS = (
    models.IntegerField,  # includes BigIntegerField, the auto fields, PositiveIntegerField
    models.CharField,  # includes SlugField
    models.TextField,
    models.BooleanField,
    models.ForeignKey,  # includes OneToOneField
    models.DateTimeField,
)


@lru_cache(maxsize=16)
def insert_shape(model: type[models.Model], vendor: str, with_pk: bool) -> tuple:
    """Column list, typed placeholders and value getters of an INSERT of `model`.

    Depends on the schema only, so it is computed once per model and process. The
    getters reproduce the ORM's INSERT (`pre_save`, then `get_db_prep_save`), skipping
    the conversion where it is the identity: it is most of the Python time of a spend.
    """
    connection = next(c for c in connections.all() if c.vendor == vendor)
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(f"%s::{f.cast_db_type(connection)}" for f in fields)
    getters = []
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            getters.append(lambda obj, conn, f=f: f.pre_save(obj, True))
        elif isinstance(f, _PLAIN_FIELDS):
            getters.append(lambda obj, conn, name=f.attname: getattr(obj, name))
        else:
            getters.append(lambda obj, conn, f=f: f.get_db_prep_save(getattr(obj, f.attname), conn))
    return columns, placeholders, getters


# --- how the statements are sent ---------------------------------------------------------


def prepared_cursor(connection):
    """The fast path's statements use `$n` placeholders (`Prepared.sql`)."""
    return _prepared_cursor(connection, dollar_placeholders=True)
