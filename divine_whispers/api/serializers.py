"""Base input serializer and the error envelope (for the OpenAPI schema)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.fields import SkipField
from rest_framework.relations import PKOnlyObject


class FieldsOnceMixin:
    """Builds a serializer's fields once per class instead of once per request.

    DRF builds every serializer's fields each time it is instantiated (deep copies of the
    declared fields; for a ModelSerializer also the model field mapping): ~0.5 ms of CPU
    per serializer, more than the validation or rendering itself, on every API request
    (measured in the HTTP profile). The fields used here are stateless — limits are read
    when a value is validated, errors are kept on the serializer — so one set built on an empty
    template instance serves every request.

    The shared fields are bound to that template, so anything that must see *this*
    serializer goes through it, not through the field's parent: `to_representation`
    calls a SerializerMethodField's method on `self` (it may read `self.context`). Only
    for serializers whose fields use neither the instance nor the context themselves (no
    hyperlinks, no CurrentUserDefault, no nested serializers that read the context) and
    that never add or remove fields per instance.
    """

    @property
    def fields(self):
        cls = type(self)
        built = cls.__dict__.get("_fields_built_once")
        if built is None:
            template = cls()  # bound to an empty template, never to a request's data
            built = super(FieldsOnceMixin, template).fields
            cls._fields_built_once = built
        return built

    def to_representation(self, instance: Any) -> dict:
        """DRF's Serializer.to_representation, with method fields called on `self`."""
        data = {}
        for field in self._readable_fields:
            if isinstance(field, serializers.SerializerMethodField):
                data[field.field_name] = getattr(self, field.method_name)(instance)
                continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            data[field.field_name] = None if check is None else field.to_representation(attribute)
        return data


class StrictInputSerializer(FieldsOnceMixin, serializers.Serializer):
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
    code = serializers.CharField(help_text="Stable machine-readable code (docs/behaviour.md).")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(
        help_text='Context; validation errors list field problems under "fields".'
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    error = ErrorSerializer()
