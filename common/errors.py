"""The one domain error type. Services raise it; the API maps it to HTTP errors and the admin
shows its message. ``code`` is stable and machine-readable; ``field`` names the offending input."""

from __future__ import annotations

from django.core.exceptions import ValidationError


class BillingError(Exception):
    def __init__(self, message: str, *, code: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.status = status

    def as_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "field": self.field, "message": self.message}


def from_validation_error(exc: ValidationError) -> BillingError:
    """The first message of a Django ``ValidationError`` as the domain error, naming its field."""
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.error_dict.items()))
        return BillingError(errors[0].messages[0], code="invalid", field=None if field == "__all__" else field)
    return BillingError(exc.messages[0], code="invalid")
