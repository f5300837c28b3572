"""Structured logs: one JSON object per line in production, readable text in development.

Built on the standard library's `logging` with python-json-logger's formatter rather than
structlog: every existing `logging.getLogger(__name__)` call, Django's own loggers and
gunicorn's go through the same handler unchanged, and the fields a line carries are the
record's `extra=` values — nothing new to learn and no second logging API in the code.

Every line also carries the running request's id (a filter reads it from the request
context), and every line — message, arguments, extra fields, traceback — passes through
`redact()` last, so a token, a password or an `Authorization` value never reaches the
output even when some code logs one by mistake.
"""

from __future__ import annotations

import logging
import re
from typing import Any

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
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingTextFormatter(logging.Formatter):
    """Readable development lines: time, level, logger, message, then the extra fields."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
        "message",
        "asctime",
        "taskName",
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
        return redact(line)


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
