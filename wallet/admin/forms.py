"""Plain Django forms for the wallet admin's staff flows (refund, adjust points, grant
promotional points, reject an approval request).

They only shape input for the services: the services stay the authority on every
rule (limits, what remains refundable, balance), and their DomainErrors are turned
into form errors by the admin views.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from audit.backoffice.fields import StrictIntegerField
from divine_whispers.errors import DomainError
from divine_whispers.money import CAMPAIGN_MAX_LENGTH, REASON_MAX_LENGTH
from divine_whispers.points_format import points

# The reference of a booking made through these flows (wallet/admin/confirmations.py).
FORM_REFERENCE_PREFIX = "admin-"


class StaffOperationForm(forms.Form):
    """Shared part of the staff flows: a written reason (refund, adjust, reject)."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. Stored on the ledger row and in the audit trail.",
        error_messages={"required": "A reason is required."},
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("A reason is required.", code="required")
        return reason

    def add_domain_error(self, error: DomainError) -> None:
        """Show a refusal from the services on the field it concerns (else on the form)."""
        self.add_error(error_field(error, self.fields), domain_error_message(error))


def domain_error_message(error: DomainError) -> SafeString:
    """The refusal as a sentence, its contract code after it in small type (staff quote
    the code to developers; it is not part of what the sentence says)."""
    text = error.message
    if error.code == "insufficient_balance":
        text = (
            f"{error.message} The wallet holds {points(error.details.get('balance'))} points; "
            f"this would take {points(error.details.get('required'))}."
        )
    return with_code(text, error.code)


def with_code(text: str, code: str) -> SafeString:
    return format_html('{} <small class="error-code">Error code: {}</small>', text, code)


def error_field(error: DomainError, fields: Any) -> str | None:
    field = error.details.get("field")
    if field in fields:
        return field
    return "amount" if error.code in AMOUNT_ERROR_CODES and "amount" in fields else None


AMOUNT_ERROR_CODES = frozenset(
    {"amount_too_large", "refund_exceeds_original", "insufficient_balance"}
)

REFUND_ALL = "all"
REFUND_PART = "partial"


class RefundForm(StaffOperationForm):
    """Step one of a refund: an explicit choice, never a meaning hidden in a blank field.

    "All that remains" takes no amount (the confirmation shows the number); "part of
    it" needs one. Both are turned into an exact number before anything is confirmed.
    """

    mode = forms.ChoiceField(
        label="What to refund",
        widget=forms.RadioSelect,
        choices=[(REFUND_ALL, "All that remains"), (REFUND_PART, "Part of it:")],
        error_messages={"required": "Choose whether to refund all that remains or a part of it."},
    )
    amount = StrictIntegerField(
        required=False,
        min_value=1,
        label="Amount (points)",
        help_text="Only for a partial refund: whole points, at most what remains.",
    )
    field_order = ["mode", "amount", "reason"]

    def __init__(self, *args: Any, remaining: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if remaining is not None:
            self.fields["mode"].choices = [
                (REFUND_ALL, f"All that remains ({points(remaining)} points)"),
                (REFUND_PART, "Part of it (enter the amount below)"),
            ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        mode, amount = data.get("mode"), data.get("amount")
        if mode == REFUND_PART and amount is None and "amount" not in self.errors:
            self.add_error("amount", "Enter the amount of the partial refund.")
        if mode == REFUND_ALL and amount is not None:
            self.add_error(
                "amount",
                "You chose to refund all that remains: leave the amount empty, "
                "or choose “Part of it”.",
            )
        return data


class AdjustPointsForm(StaffOperationForm):
    """A signed correction: positive credits the wallet, negative debits it."""

    amount = StrictIntegerField(
        allow_zero=False,
        label="Amount (points, signed)",
        help_text="Positive adds points, negative removes them, e.g. 150 or -40.",
    )
    field_order = ["amount", "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].max_magnitude = settings.WALLET_MAX_TRANSACTION_AMOUNT


class GrantPointsForm(StaffOperationForm):
    """A grant of promotional points: a positive amount, optionally expiring."""

    amount = StrictIntegerField(
        min_value=1, label="Amount (points)", help_text="Whole points, e.g. 100."
    )
    campaign = forms.CharField(
        max_length=CAMPAIGN_MAX_LENGTH,
        required=False,
        help_text="Optional label for the report and the lot, e.g. welcome-2026.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text="Optional, in the server's time zone; empty: the points never expire.",
    )
    field_order = ["amount", "reason", "campaign", "expires_at"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].max_magnitude = settings.WALLET_MAX_TRANSACTION_AMOUNT

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise ValidationError("The expiry must be in the future.", code="past")
        return value


class RejectApprovalForm(StaffOperationForm):
    """Rejecting an approval request needs a written reason."""

    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Required. The requester sees it; it is kept in the audit trail.",
        error_messages={"required": "A reason is required."},
    )
