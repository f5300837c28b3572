"""Structured logs: one JSON object per line in production, readable text in development.

Built on the standard library's `logging` with python-json-logger's formatter rather than
structlog: every existing `logging.getLogger(__name__)` call, Django's own loggers and
gunicorn's go through the same handler unchanged, and the fields a line carries are the
record's `extra=` values — nothing new to learn and no second logging API in the code.

Every line also carries the running request's id (a filter reads it from the request
context), and every line — message, arguments, extra fields, traceback — passes through
`redact()` last, so a token, a password or an `Authorization` value never reaches the
output even when some code logs one by mistake. The two lines logged on every request
(the request line and the money operation's) are redacted *by construction* instead:
every value they hold is a constant, a number, a URL pattern or a sanitized request id,
and `safe_fields()` marks them so, which spares them the regular expressions (the
hot path's largest logging cost).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from divine_whispers.request_context import current_request_context

# Credentials as they appear in headers, query strings, JSON bodies (also JSON inside a
# JSON string, where quotes arrive escaped) and repr()s.
_Q = r"""(?:\\?['"])?"""  # an optional quote, maybe backslash-escaped
_VALUE = r"""[^\s'",&}\\]+"""
_SECRET_PATTERNS = (
    # "Authorization: Token abc", "authorization=Bearer abc", "'HTTP_AUTHORIZATION': 'Token abc'"
    re.compile(
        rf"(?i)((?:http_)?authorization{_Q}\s*[:=]\s*{_Q})(?:(?:token|bearer|basic)\s+)?{_VALUE}"
    ),
    re.compile(r"(?i)\b((?:token|bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # password=..., "password": "...", 'new_password1': '...', secret / key / token fields
    re.compile(
        rf"(?i)((?:password\w*|passwd|secret\w*|api[_-]?key|\w*token|access[_-]?key){_Q}"
        rf"\s*[:=]\s*{_Q}){_VALUE}"
    ),
)
REDACTED = "[REDACTED]"
# Set on a record whose every value is safe by construction (see the module docstring).
SAFE_BY_CONSTRUCTION = "_dw_safe_by_construction"


def safe_fields(**fields: Any) -> dict[str, Any]:
    """`extra=` for a record built only from constants, numbers, URL patterns and sanitized
    ids: never a value a client typed, so no credential can be in it. Such a record skips
    `redact()`; anything else logged anywhere is still redacted."""
    return {**fields, SAFE_BY_CONSTRUCTION: True}


def _finished(record: logging.LogRecord, line: str) -> str:
    """The line, redacted unless its record is safe by construction (a traceback never is)."""
    if getattr(record, SAFE_BY_CONSTRUCTION, False) and not (record.exc_info or record.stack_info):
        return line
    return redact(line)


def redact(text: str) -> str:
    """The text with every credential-looking value replaced by [REDACTED]."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RequestIdFilter(logging.Filter):
    """Adds the running request's id to every record (empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_context().request_id or None
        return True


class RedactingJsonFormatter(JsonFormatter):
    """python-json-logger's formatter, with the finished line redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", True)
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, SAFE_BY_CONSTRUCTION])
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return _finished(record, super().format(record))


class RedactingTextFormatter(logging.Formatter):
    """Readable development lines: time, level, logger, message, then the extra fields."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
        "message",
        "asctime",
        "taskName",
        SAFE_BY_CONSTRUCTION,
    }

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {
            k: v for k, v in vars(record).items() if k not in self._STANDARD and v is not None
        }
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in sorted(extras.items()))
        return _finished(record, line)


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """The LOGGING setting: JSON lines (`json`) or text (`text`) on stdout."""
    formatter = "json" if log_format == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "divine_whispers.observability.logs.RequestIdFilter"}},
        "formatters": {
            "json": {"()": "divine_whispers.observability.logs.RedactingJsonFormatter"},
            "text": {"()": "divine_whispers.observability.logs.RedactingTextFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": formatter,
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Our request lines replace Django's per-request warnings ("Not Found: /x").
            "django.request": {"level": "ERROR"},
            # gunicorn's own lines (worker boots, timeouts) in the same format.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
        },
    }
