"""The points and reference rules, shared by services, serializers and admin forms.

Points are whole numbers: an int that is not a bool. Floats, decimals and numeric
strings are refused rather than coerced, so `"10"`, `1.0` or `True` never move money.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from divine_whispers.errors import AmountTooLarge, ValidationFailed

# A reference (body field or Idempotency-Key header): 1–255 printable ASCII characters.
REFERENCE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 500
REASON_MAX_LENGTH = 500
CAMPAIGN_MAX_LENGTH = 100  # a grant's campaign label (and its lot's)
BIGINT_MAX = 2**63 - 1


def max_transaction_amount() -> int:
    """The most points one operation may move (settings, read at call time)."""
    return settings.WALLET_MAX_TRANSACTION_AMOUNT


def max_transfer_amount() -> int:
    """The most points one transfer may move: its own limit, within the operation limit."""
    return min(settings.WALLET_MAX_TRANSFER_AMOUNT, settings.WALLET_MAX_TRANSACTION_AMOUNT)


def is_strict_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_positive_amount(value: Any, *, maximum: int, field: str = "amount") -> int:
    """A positive whole number of points no larger than `maximum`."""
    if not is_strict_int(value):
        raise ValidationFailed(f"{field} must be a whole number of points.", field=field)
    if value <= 0:
        raise ValidationFailed(f"{field} must be greater than zero.", field=field)
    if value > maximum:
        raise AmountTooLarge(f"{field} must be at most {maximum}.", field=field, maximum=maximum)
    return value


def validate_signed_amount(value: Any, *, maximum: int, field: str = "amount") -> int:
    """A non-zero whole number whose magnitude is at most `maximum` (adjustments)."""
    if not is_strict_int(value):
        raise ValidationFailed(f"{field} must be a whole number of points.", field=field)
    if value == 0:
        raise ValidationFailed(f"{field} must not be zero.", field=field)
    if abs(value) > maximum:
        raise AmountTooLarge(
            f"{field} must be at most {maximum} in magnitude.", field=field, maximum=maximum
        )
    return value


# The same rules as regular expressions, for the OpenAPI schema. A reference neither starts
# nor ends with a space: HTTP strips a header value's surrounding whitespace, so a body
# "ref " and a header "ref " would otherwise name two different references.
REFERENCE_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
# An Idempotency-Key also holds no comma (two such headers arrive joined by one). It is
# described as it arrives, before HTTP strips surrounding spaces.
IDEMPOTENCY_KEY_PATTERN = r"^[ -+\--~]*[!-+\--~][ -+\--~]*$"


def is_valid_reference(value: Any) -> bool:
    """1–255 printable ASCII characters, no leading or trailing space."""
    return (
        isinstance(value, str)
        and 1 <= len(value) <= REFERENCE_MAX_LENGTH
        and all(" " <= char <= "~" for char in value)
        and value[0] != " "
        and value[-1] != " "
    )


def is_valid_idempotency_key(value: Any) -> bool:
    """A valid reference without a comma: `a, b` is what two headers become."""
    return is_valid_reference(value) and "," not in value


def validate_reference(value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValidationFailed("reference_id is required.", field="reference_id")
        return None
    if not is_valid_reference(value):
        raise ValidationFailed(
            "reference_id must be 1–255 printable ASCII characters, without a leading or "
            "trailing space.",
            field="reference_id",
        )
    return value


def validate_text(value: Any, *, field: str, required: bool, max_length: int) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string.", field=field)
    value = value.strip()
    if required and not value:
        raise ValidationFailed(f"{field} is required.", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"{field} must be at most {max_length} characters.", field=field)
    return value
