"""JSON parsing that turns every malformed or unstorable body into a 400, never a 500."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _unstorable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL; UTF-8 cannot hold lone surrogates (`"\\ud800"`)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_strings(data: Any) -> None:
    """Walk the parsed body iteratively (a recursive walk could itself overflow)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if _unstorable(value):
                raise ParseError("The body contains a NUL character or an invalid code point.")
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


class StrictJSONParser(JSONParser):
    """DRF's JSONParser, plus two refusals it lacks.

    * RecursionError (e.g. 100,000 nested `[`) escapes DRF's parser as a 500;
    * strings with NUL or lone surrogates parse fine but make the database driver
      raise later (a 500); refusing them here keeps every bad body a 400.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
        _check_strings(data)
        return data
