"""How the back-office writes points: thousands separators, and amounts always signed.

One place, so lists, detail pages, confirmation pages and messages agree ("+1,250",
"-40", balances "12,000"). Plain ASCII signs: staff copy figures into tickets.
"""

from __future__ import annotations

from typing import Any


def points(value: Any) -> str:
    """A balance or a count of points: `12,000`; anything not an int is shown as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,d}"
    return "—" if value is None else str(value)


def signed_points(value: Any) -> str:
    """A movement of points: `+1,250`, `-40` (zero has no sign)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+,d}" if value else "0"
    return "—" if value is None else str(value)
