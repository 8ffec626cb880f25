"""Form fields for list-valued JSON columns, so staff type ``a@x.com, b@y.com`` rather than JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email


class CommaSeparatedListField(forms.CharField):
    """Edits a JSON list as comma- or newline-separated text."""

    item_error = "Invalid item: {item}."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.TextInput(attrs={"size": 60}))
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return value

    def parse_item(self, item: str) -> Any:
        return item

    # A CharField for its text handling (stripping, empty values) whose cleaned value is the list.
    def to_python(self, value: Any) -> list[Any]:  # type: ignore[override]
        if isinstance(value, list):
            return value
        text = super().to_python(value)
        items = [part.strip() for part in re.split(r"[,\n;]", text or "") if part.strip()]
        return [self.parse_item(item) for item in items]

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(self.prepare_value(initial)) != self.to_python(data)
        except ValidationError:
            return True


class EmailListField(CommaSeparatedListField):
    def parse_item(self, item: str) -> str:
        try:
            validate_email(item)
        except ValidationError:
            raise ValidationError(f"{item!r} is not a valid e-mail address.", code="invalid") from None
        return item.lower()


class PercentListField(CommaSeparatedListField):
    def parse_item(self, item: str) -> int:
        try:
            return int(item.rstrip("%").strip())
        except ValueError:
            raise ValidationError(f"{item!r} is not a whole percentage.", code="invalid") from None
