"""Pieces shared by the API schemas above the ledger (subscriptions here, disputes above billing): inline enums and
input serializers that refuse unknown fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

from usage.ingest import quoted

ERR_UNKNOWN_FIELD = "Unknown field."


def enum(choices, *, allow_null: bool = False, **kwargs) -> serializers.ChoiceField:
    """A choice, documented inline (``allOf`` of an enum, which the enum post-processing leaves alone, as
    ``billing.schema_ledger.InvoiceStatusField``) rather than as a named component, whose generated name would
    collide with the other documents' like-named ``status`` and ``state`` sets."""
    values = [value for value, _label in choices] if choices and isinstance(choices[0], tuple) else list(choices)
    inline: dict[str, Any] = {"type": "string", "enum": values}
    if allow_null:
        inline = {"type": "string", "nullable": True, "enum": [*values, None]}
    field_class = type("EnumField", (serializers.ChoiceField,), {})
    # A lone ``allOf`` without a sibling key is unwrapped (and its enum named): a description keeps it.
    extend_schema_field({"allOf": [inline], "description": kwargs.get("help_text") or "One of the values listed."})(
        field_class
    )
    return field_class(choices=values, allow_null=allow_null, **kwargs)


class StrictInput(serializers.Serializer):
    """An input serializer that refuses fields it does not know (a misspelt field is never silently dropped)."""

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in self.fields]
            if unknown:
                raise ValidationError(
                    {quoted(key): [ErrorDetail(ERR_UNKNOWN_FIELD, code="unknown_field")] for key in unknown}
                )
        return super().to_internal_value(data)


class StrictInputSchema(OpenApiSerializerExtension):
    """Documents a ``StrictInput`` as the object it is: ``additionalProperties: false``."""

    target_class = StrictInput
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_basic_serializer(self.target, direction)
        schema["additionalProperties"] = False
        return schema
