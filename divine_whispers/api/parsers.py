"""JSON parsing that turns every malformed, ambiguous or unstorable body into a 400.

DRF's JSONParser accepts a few bodies that later fail in the database driver (a 500) or
that different parsers read differently; this one refuses them up front:
  * nesting deep enough to raise RecursionError (e.g. 100,000 `[`);
  * numbers that overflow to infinity (`1e400`), which PostgreSQL's jsonb rejects;
  * strings with NUL (PostgreSQL text cannot hold it) or lone surrogates (`"\\ud800"`,
    not encodable as UTF-8);
  * duplicate keys (`{"amount": 1, "amount": 1000}`): which one "wins" depends on the
    parser, so a proxy or log and this server could disagree about what was asked.
A body is always read as UTF-8; a `charset` parameter naming anything else (utf-7,
utf-16, latin-1…), or a charset named twice, is refused with 415 before a byte is read:
under utf-7, `{"+AGE-mount":7}` is `{"amount":7}`, which a UTF-8 reader (a proxy, a log, a
WAF) never sees.
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import JSONParser


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise _Refused(f"{name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {key!r}")
        result[key] = value
    return result


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:20]} is out of range")
    return value


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_strings(data: Any) -> None:
    """Walk the parsed body iteratively (a recursive walk could itself overflow)."""
    pending = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if not _storable(value):
                raise ParseError("The body contains a NUL character or an invalid code point.")
        elif isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


UTF8_NAMES = frozenset({"utf-8", "utf8"})


def _charset_count(media_type: str) -> int:
    """How many `charset=` parameters the header carries (the parser keeps only the last)."""
    names = [part.split("=", 1)[0].strip().lower() for part in media_type.split(";")[1:]]
    return names.count("charset")


def refuse_foreign_charset(media_type: str | None) -> None:
    """415 when the Content-Type names a charset other than UTF-8, or names one twice
    (`charset=utf-7; charset=utf-8`: which one a proxy or log believes is anyone's guess)."""
    try:
        _type, params = parse_header_parameters(media_type or "")
    except ValueError:  # over Django's header length limit: no charset can be trusted
        params = {"charset": "?"}
    charset = {key.lower(): value for key, value in params.items()}.get("charset")
    if _charset_count(media_type or "") > 1:
        charset = "?"
    if charset is not None and charset.strip().lower() not in UTF8_NAMES:
        raise UnsupportedMediaType(
            media_type, detail="JSON bodies must be UTF-8: send charset=utf-8 or no charset."
        )


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        refuse_foreign_charset(media_type)
        try:
            text = codecs.getreader("utf-8")(stream).read()
            data = json.loads(
                text,
                parse_constant=_refuse_constant,
                parse_float=_finite_float,
                object_pairs_hook=_unique_object,
            )
        except RecursionError as exc:
            raise ParseError("JSON parse error - the body is nested too deeply.") from exc
        except ValueError as exc:  # includes UnicodeDecodeError and json.JSONDecodeError
            raise ParseError(f"JSON parse error - {exc}") from exc
        _check_strings(data)
        return data
