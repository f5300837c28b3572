"""Points as the report and timeline pages show them: thousands separators, and an
explicit sign where a number is a change (`signed_points`)."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def points(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


@register.filter
def signed_points(value: int | None) -> str:
    """`+1,000`, `-120`, and `0` unsigned (nothing changed)."""
    if value is None:
        return ""
    return f"{value:+,}" if value else "0"
