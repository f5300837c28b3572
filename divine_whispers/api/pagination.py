"""Pagination: cursors for histories (stable while new rows arrive), pages for admin lists.

`page_size` (and `page`) are validated, not coerced: DRF silently replaces a bad or
too-large value with a default, which the schema could not state; here a value outside
1..max_page_size (or not a whole number) is a 400, and the schema says so.
"""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination, PageNumberPagination

_WHOLE_NUMBER = re.compile(r"[0-9]{1,9}")


def _whole_number(request, name: str, *, maximum: int | None = None) -> int | None:
    """The query parameter `name` as an int in 1..maximum, None when absent, else 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = int(raw) if _WHOLE_NUMBER.fullmatch(raw) else 0
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" to {maximum}" if maximum is not None else " or more"
        raise ValidationError({name: [f"Must be a whole number from 1{bound}."]})
    return value


class StrictPageSizeMixin:
    page_size_query_param = "page_size"
    page_size: int
    max_page_size: int

    def get_page_size(self, request) -> int:
        chosen = _whole_number(request, self.page_size_query_param, maximum=self.max_page_size)
        return chosen if chosen is not None else self.page_size

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)  # type: ignore[misc]
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters


# The keys DRF writes into a cursor: offset, reverse, position.
_CURSOR_KEYS = frozenset({"o", "r", "p"})


def _issued_shape(encoded: str) -> bool:
    """Whether `encoded` could be a cursor this server issued.

    DRF's decoder drops every character outside the base64 alphabet and reads a cursor
    without keys as "the first page", so `!!!!`, `=` or `YQ==` ("a") answered 200 with
    page one. A cursor we issue is canonical base64 of a query string with at least one
    of DRF's keys and no other.
    """
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
        text = raw.decode("ascii")
    except (ValueError, UnicodeError):
        return False
    if not raw or base64.b64encode(raw).decode("ascii") != encoded:
        return False
    keys = set(parse_qs(text, keep_blank_values=True))
    return bool(keys) and keys <= _CURSOR_KEYS


class NewestFirstCursorPagination(StrictPageSizeMixin, CursorPagination):
    """Newest first; `id` breaks ties between rows created in the same microsecond.

    A cursor is a position in (created_at, id) order, so rows inserted while a client
    pages through its history appear on page one and never shift later pages.
    """

    ordering = ("-created_at", "-id")
    page_size = 50
    max_page_size = 200

    def decode_cursor(self, request):
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded and not _issued_shape(encoded):  # empty: no cursor, the first page
            raise ValidationError({"cursor": ["Invalid cursor."]})
        try:
            return super().decode_cursor(request)
        except NotFound as exc:  # a malformed cursor is a bad request, not a missing page
            raise ValidationError({"cursor": ["Invalid cursor."]}) from exc

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "Opaque position: copy it from a previous page's `next` or `previous`. "
                    "A value the server did not issue is refused with 400 `validation_error`."
                )
        return parameters


class AdminPagePagination(StrictPageSizeMixin, PageNumberPagination):
    page_size = 50
    max_page_size = 200

    def get_page_number(self, request, paginator) -> int:
        chosen = _whole_number(request, self.page_query_param)
        return chosen if chosen is not None else 1

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 999_999_999}
                parameter["description"] = "Page number; past the last page is 404 `not_found`."
        return parameters
