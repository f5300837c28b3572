"""Strict input fields. DRF's own fields coerce (`"10"` → 10, `1.0` → 1, `10` → `"10"`);
money must never be coerced, so these accept exactly one JSON type each and reuse the
core's validators (wallet/validators.py) so the API and the services agree on the rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from wallet.errors import AmountTooLarge, ValidationFailed
from wallet.validators import (
    BIGINT_MAX,
    REFERENCE_MAX_LENGTH,
    REFERENCE_PATTERN,
    is_strict_int,
    is_valid_reference,
    validate_positive_amount,
    validate_signed_amount,
)


def max_transaction_amount() -> int:
    return settings.WALLET_MAX_TRANSACTION_AMOUNT


def max_transfer_amount() -> int:
    return min(settings.WALLET_MAX_TRANSFER_AMOUNT, settings.WALLET_MAX_TRANSACTION_AMOUNT)


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1})
class StrictAmountField(serializers.Field):
    """A JSON integer of points (not a bool, float or string), within the limit.

    `signed=True` (adjustments) accepts negatives but still refuses 0. Errors carry the
    code `amount_too_large` when only the limit is the problem, so the exception handler
    can answer with that contract code.
    """

    def __init__(
        self,
        *,
        maximum: Callable[[], int] = max_transaction_amount,
        signed: bool = False,
        **kwargs: Any,
    ) -> None:
        self.maximum = maximum
        self.signed = signed
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        validate = validate_signed_amount if self.signed else validate_positive_amount
        try:
            return validate(data, maximum=self.maximum(), field=self.field_name)
        except AmountTooLarge as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from exc
        except ValidationFailed as exc:
            raise serializers.ValidationError(exc.message, code="invalid") from exc

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1})
class StrictIdField(serializers.Field):
    """A JSON integer id in 1..2^63-1 (a string "5" or 5.0 is refused, not coerced)."""

    def to_internal_value(self, data: Any) -> int:
        if not is_strict_int(data) or not 1 <= data <= BIGINT_MAX:
            raise serializers.ValidationError(
                f"{self.field_name} must be a positive integer id.", code="invalid"
            )
        return data

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field(
    {
        "type": "string",
        "minLength": 1,
        "maxLength": REFERENCE_MAX_LENGTH,
        "pattern": REFERENCE_PATTERN,
    }
)
class ReferenceField(serializers.Field):
    """An idempotency reference: 1–255 printable ASCII characters, taken verbatim, with no
    leading or trailing space (refused, never stripped: the client must know its key)."""

    def to_internal_value(self, data: Any) -> str:
        if not is_valid_reference(data):
            raise serializers.ValidationError(
                f"{self.field_name} must be 1–255 printable ASCII characters, without a "
                "leading or trailing space.",
                code="invalid",
            )
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field(OpenApiTypes.STR)
class StrictTextField(serializers.Field):
    """A JSON string (numbers are refused, not turned into text), at most `max_length`."""

    def __init__(self, *, max_length: int, **kwargs: Any) -> None:
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(
                f"{self.field_name} must be a string.", code="invalid"
            )
        if len(data) > self.max_length:
            raise serializers.ValidationError(
                f"{self.field_name} must be at most {self.max_length} characters.",
                code="max_length",
            )
        return data

    def to_representation(self, value: str) -> str:
        return value


@extend_schema_field({"type": "object", "additionalProperties": True})
class JSONObjectField(serializers.Field):
    """A JSON object (dict); arrays, strings and null are refused."""

    def to_internal_value(self, data: Any) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                f"{self.field_name} must be a JSON object.", code="invalid"
            )
        return data

    def to_representation(self, value: dict) -> dict:
        return value
