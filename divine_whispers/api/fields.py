"""Strict input fields. DRF's own fields coerce (`"10"` → 10, `1.0` → 1, `10` → `"10"`);
money must never be coerced, so these accept exactly one JSON type each and reuse the
foundation's points rules (divine_whispers/money.py) so the API and the services agree on the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from divine_whispers.errors import AmountTooLarge, ValidationFailed
from divine_whispers.money import (
    BIGINT_MAX,
    REFERENCE_MAX_LENGTH,
    REFERENCE_PATTERN,
    is_strict_int,
    is_valid_reference,
    max_transaction_amount,
    validate_positive_amount,
    validate_signed_amount,
)


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


# Python's str.strip() whitespace, spelled out: JSON Schema's `\s` is ECMAScript's, which
# differs (it lacks U+001C–U+001F and U+0085 and includes U+FEFF).
STRIPPED_WHITESPACE = "\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL_PATTERN = "^[^\\u0000]*$"
NOT_BLANK = re.compile(f"[^{STRIPPED_WHITESPACE}]")
NOT_BLANK_PATTERN = (
    "[^\\t-\\r\\u001c \\u001d\\u001e\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


class StrictTextField(serializers.Field):
    """A JSON string (numbers are refused, not turned into text), at most `max_length`;
    with `blank=False`, one that is more than whitespace (a reason, a code)."""

    def __init__(self, *, max_length: int, blank: bool = True, **kwargs: Any) -> None:
        self.max_length = max_length
        self.blank = blank
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
        if not self.blank and not NOT_BLANK.search(data):
            raise serializers.ValidationError(f"{self.field_name} is required.", code="blank")
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


class StrictAmountFieldSchema(OpenApiSerializerFieldExtension):
    """The amount's range as the server enforces it now (the limits are settings)."""

    target_class = StrictAmountField

    def map_serializer_field(self, auto_schema, direction):
        field: StrictAmountField = self.target
        maximum = field.maximum()
        if direction == "response":
            return {"type": "integer", "format": "int64"}
        if field.signed:
            return {
                "type": "integer",
                "format": "int64",
                "minimum": -maximum,
                "maximum": maximum,
                "not": {"enum": [0]},
            }
        return {"type": "integer", "format": "int64", "minimum": 1, "maximum": maximum}


class StrictTextFieldSchema(OpenApiSerializerFieldExtension):
    """Length, no NUL character (the JSON parser refuses it: PostgreSQL text cannot hold
    it) and, for required text, at least one character that is not whitespace."""

    target_class = StrictTextField

    def map_serializer_field(self, auto_schema, direction):
        field: StrictTextField = self.target
        schema: dict[str, Any] = {"type": "string", "maxLength": field.max_length}
        if direction == "response":
            return schema
        if field.blank:
            schema["pattern"] = NO_NUL_PATTERN
        else:
            schema["minLength"] = 1
            schema["pattern"] = f"^[^\\u0000]*{NOT_BLANK_PATTERN[:-1]}\\u0000][^\\u0000]*$"
        return schema


@extend_schema_field(
    {"type": "string", "minLength": 1, "maxLength": 150, "pattern": "^[^\\u0000]+$"}
)
class UsernameFilterField(serializers.CharField):
    """A username filter: 1–150 characters, no NUL (DRF refuses it: 400)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=150, trim_whitespace=False, **kwargs)


class QueryIdField(serializers.IntegerField):
    """An id in the query string: decimal digits only, 1..BIGINT_MAX.

    DRF's IntegerField reads `1.0`, ` 1` and `1.000` as 1; a filter naming a user must be
    written one way only (the schema says `integer`), so anything but digits is a 400.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, str) or not _QUERY_DIGITS.fullmatch(data):
            self.fail("invalid")
        return super().to_internal_value(data)


_QUERY_DIGITS = re.compile(r"[0-9]{1,19}")
