"""Strict validation of money inputs, shared by services, serializers and admin forms.

Points are whole numbers: an int that is not a bool. Floats, decimals and numeric
strings are refused rather than coerced, so `"10"`, `1.0` or `True` never move money.
"""

from __future__ import annotations

from typing import Any

from wallet.errors import AmountTooLarge, ValidationFailed

# A reference (body field or Idempotency-Key header): 1–255 printable ASCII characters.
REFERENCE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 500
REASON_MAX_LENGTH = 500
BIGINT_MAX = 2**63 - 1


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


def is_valid_reference(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 1 <= len(value) <= REFERENCE_MAX_LENGTH
        and all(" " <= char <= "~" for char in value)
    )


def validate_reference(value: Any, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValidationFailed("reference_id is required.", field="reference_id")
        return None
    if not is_valid_reference(value):
        raise ValidationFailed(
            "reference_id must be 1–255 printable ASCII characters.", field="reference_id"
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
