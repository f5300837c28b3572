"""Plain Django forms for the admin's staff flows (refund, adjust points, job type price).

They only shape input for the services: the services stay the authority on every
rule (limits, what remains refundable, balance), and their DomainErrors are turned
into form errors by the admin views.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from wallet.errors import DomainError
from wallet.validators import REASON_MAX_LENGTH, is_valid_reference

# Optional sign, then digits only: no decimal point, exponent, thousands separator
# or unicode digits. Django's IntegerField would accept "10.0" (and localised
# "1,000"); money input must be refused rather than coerced.
STRICT_INT_RE = re.compile(r"[+-]?[0-9]+")
FORM_REFERENCE_PREFIX = "admin-"


class StrictIntegerField(forms.Field):
    """A whole number typed as digits with an optional sign; anything else is refused."""

    default_error_messages = {
        "invalid": "Enter a whole number of points (digits only, no decimals).",
        "zero": "The amount must not be zero.",
        "min_value": "The amount must be at least %(limit)s.",
        "max_value": "The amount must be at most %(limit)s in magnitude.",
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
                self.error_messages["min_value"], code="min_value", params={"limit": self.min_value}
            )
        if self.max_magnitude is not None and abs(value) > self.max_magnitude:
            raise ValidationError(
                self.error_messages["max_value"],
                code="max_value",
                params={"limit": self.max_magnitude},
            )


def new_form_reference() -> str:
    """A one-time reference per rendered form: a double-submitted form replays the
    first submission instead of moving money twice (the services' idempotency)."""
    return f"{FORM_REFERENCE_PREFIX}{uuid.uuid4()}"


class StaffOperationForm(forms.Form):
    """Shared parts of the two staff flows: a reason and a one-time reference."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Stored on the ledger row and in the audit trail.",
        error_messages={"required": "A reason is required."},
    )
    reference = forms.CharField(widget=forms.HiddenInput, max_length=255)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("reference", new_form_reference())

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("A reason is required.", code="required")
        return reason

    def clean_reference(self) -> str:
        reference = self.cleaned_data["reference"]
        if not reference.startswith(FORM_REFERENCE_PREFIX) or not is_valid_reference(reference):
            raise ValidationError("The form expired; reload the page and try again.")
        return reference

    def add_domain_error(self, error: DomainError) -> None:
        """Show a refusal from the services on the field it concerns (else on the form)."""
        field = error.details.get("field")
        message = f"{error.message} ({error.code})"
        if error.code == "insufficient_balance":
            message = (
                f"{error.message} The wallet holds {error.details.get('balance')} points; "
                f"this would take {error.details.get('required')}. ({error.code})"
            )
        if field not in self.fields or field in ("reference",):
            field = "amount" if error.code in AMOUNT_ERROR_CODES else None
        self.add_error(field, message)


AMOUNT_ERROR_CODES = frozenset(
    {"amount_too_large", "refund_exceeds_original", "insufficient_balance"}
)


class RefundForm(StaffOperationForm):
    """Refund a spend: leave the amount empty for everything that remains."""

    amount = StrictIntegerField(
        required=False,
        min_value=1,
        label="Amount (points)",
        help_text="Leave empty to refund everything that remains refundable.",
    )
    field_order = ["amount", "reason", "reference"]


class AdjustPointsForm(StaffOperationForm):
    """A signed correction: positive credits the wallet, negative debits it."""

    amount = StrictIntegerField(
        allow_zero=False,
        label="Amount (points, signed)",
        help_text="Positive adds points, negative removes them, e.g. 150 or -40.",
    )
    field_order = ["amount", "reason", "reference"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].max_magnitude = settings.WALLET_MAX_TRANSACTION_AMOUNT
