"""How the back-office writes points: thousands separators, and amounts always signed.

One place, so lists, detail pages, confirmation pages, reports and messages agree
("+1,250", "-40", balances "12,000"; a missing figure is "—"). Plain ASCII signs: staff
copy figures into tickets. Python code calls `points` / `signed_points`; templates load
this module as the `points_format` library (settings TEMPLATES "libraries") and write
`n|points`, `n|signed_points`.
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def points(value: Any) -> str:
    """A balance or a count of points: `12,000`; anything not an int is shown as is."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,d}"
    return "—" if value is None else str(value)


@register.filter
def signed_points(value: Any) -> str:
    """A movement of points: `+1,250`, `-40` (zero has no sign)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+,d}" if value else "0"
    return "—" if value is None else str(value)


def refund_state(refunded: int, spent: int) -> str:
    """What the refunds of a spend add up to, as staff read it: a spend of 120 with 30
    refunded is "Partially refunded (30 of 120)", never plain "Refunded"."""
    if refunded <= 0:
        return "Not refunded"
    if refunded >= spent:
        return f"Refunded in full ({points(refunded)} of {points(spent)})"
    return f"Partially refunded ({points(refunded)} of {points(spent)})"
