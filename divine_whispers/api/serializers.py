"""Base input serializer and the error envelope (for the OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not declare.

    A user who sends `user_id`, `balance` or `status` must learn that nothing of it was
    applied; silently dropping them would hide client bugs that touch money.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Unknown field; it is not accepted here."] for key in unknown},
                    code="unknown_field",
                )
        return super().to_internal_value(data)


class QueryFilterSerializer(serializers.Serializer):
    """Query-string filters. A filter given empty (`?status=`) is refused, not ignored.

    DRF reads an empty optional query parameter as "not given"; the schema (an enum, a
    minimum length) says an empty value is not valid, so the server must say so too — a
    client that sent `?status=` because of a bug would otherwise get every row back.
    """

    def to_internal_value(self, data: Any) -> Any:
        blank = {
            name: ["Must not be empty; leave the parameter out to not filter."]
            for name in self.fields
            if hasattr(data, "getlist") and any(value == "" for value in data.getlist(name))
        }
        if blank:
            raise serializers.ValidationError(blank)
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code (see README).")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        help_text='Context; validation errors list field problems under "fields".'
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()
