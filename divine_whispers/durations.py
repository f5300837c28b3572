"""Durations written the way operators type them: `90s`, `15m`, `2h`, `30d`.

Shared by settings (API_TOKEN_TTL) and management commands (`--older-than`,
`--expires-in`), so every place accepts exactly the same spelling.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
HELP = "a whole number followed by s, m, h or d (e.g. 15m, 30d)"


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '7d' → timedelta; anything else, or zero, is a ValueError."""
    match = _DURATION.match(text or "")
    if match is None:
        raise ValueError(f"{text!r} is not a duration: use {HELP}")
    amount = int(match.group(1))
    if amount == 0:
        raise ValueError(f"{text!r}: the duration must be greater than zero")
    return timedelta(**{_UNITS[match.group(2)]: amount})
