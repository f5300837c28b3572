"""Strict form fields for money input in the back-office (points, prices).

Django's IntegerField coerces what a money form must refuse ("10.0", a localised
"1,000"); the wallet's staff flows and the job-type price share these instead.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

# Optional sign, then digits only: no decimal point, exponent, thousands separator
# or unicode digits. Django's IntegerField would accept "10.0" (and localised
# "1,000"); money input must be refused rather than coerced.
STRICT_INT_RE = re.compile(r"[+-]?[0-9]+")


class StrictIntegerField(forms.Field):
    """A whole number typed as digits with an optional sign; anything else is refused."""

    default_error_messages = {
        "invalid": "Enter a whole number of points (digits only, no decimals).",
        "zero": "The amount must not be zero.",
        "min_value": "The amount must be at least %(limit)s.",
        "max_value": "The amount must be at most %(limit)s points.",
        "max_magnitude": "The amount must be between -%(limit)s and %(limit)s points.",
    }

    def __init__(
        self,
        *,
        min_value: int | None = None,
        max_magnitude: int | None = None,
        allow_zero: bool = True,
        **kwargs: Any,
    ) -> None:
        self.min_value = min_value
        self.max_magnitude = max_magnitude
        self.allow_zero = allow_zero
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = super().widget_attrs(widget)
        # A hint for browsers and screen readers; the server-side check is the rule.
        attrs.update({"inputmode": "numeric", "pattern": r"[+\-]?[0-9]+", "autocomplete": "off"})
        return attrs

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        text = str(value).strip()
        if not STRICT_INT_RE.fullmatch(text):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return int(text)

    def validate(self, value: int | None) -> None:
        super().validate(value)
        if value is None:
            return
        if value == 0 and not self.allow_zero:
            raise ValidationError(self.error_messages["zero"], code="zero")
        if self.min_value is not None and value < self.min_value:
            raise ValidationError(
                self.error_messages["min_value"],
                code="min_value",
                params={"limit": f"{self.min_value:,d}"},
            )
        if self.max_magnitude is not None and abs(value) > self.max_magnitude:
            # A field that cannot go negative says "at most"; a signed one gives both ends.
            signed = self.min_value is None or self.min_value < 0
            raise ValidationError(
                self.error_messages["max_magnitude" if signed else "max_value"],
                code="max_value",
                params={"limit": f"{self.max_magnitude:,d}"},
            )
