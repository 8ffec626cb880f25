"""Portal forms: they parse and check input so mistakes come back as field errors; the views pass the
cleaned values to the services, which keep the business rules (and may still refuse, see ``add_service_error``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Account, AccountUser, Budget, validate_thresholds
from common import clock
from common.errors import BillingError
from common.forms import PercentListField
from common.money import AMOUNT_DECIMAL_PLACES, AMOUNT_MAX_DIGITS, minor_unit, round_money
from tenants.models import Tenant

ERR_BUDGET_NAME_TAKEN = "You already have a budget called “{name}”. Pick another name."
ERR_EXPIRY_PAST = "Pick a date after today (UTC)."


class PortalForm(forms.Form):
    """Links each field's errors to its input (``aria-describedby``) besides the help text, so screen readers
    announce them with the field, and puts the focus on the first field to correct."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def add_error(self, field: str | None, error: Any) -> None:
        super().add_error(field, error)
        first = True
        for name, form_field in self.fields.items():
            form_field.widget.attrs.pop("autofocus", None)
            if name not in self.errors:
                continue
            ids = [f"{self[name].auto_id}_error"]
            if form_field.help_text:
                ids.append(f"{self[name].auto_id}_helptext")
            form_field.widget.attrs["aria-describedby"] = " ".join(ids)
            if first:
                form_field.widget.attrs["autofocus"] = True
                first = False

    def add_service_error(self, exc: BillingError | ValidationError) -> None:
        """A service's refusal, on the field it names when the form has it, else on the form."""
        if isinstance(exc, BillingError):
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
            return
        if hasattr(exc, "error_dict"):
            for name, errors in exc.error_dict.items():
                self.add_error(name if name in self.fields else None, errors)
        else:
            self.add_error(None, exc)


class BudgetForm(PortalForm):
    name = forms.CharField(max_length=120, help_text="For example “Monthly spend”.")
    amount = forms.DecimalField()  # replaced per account in __init__
    period = forms.ChoiceField(choices=Budget.Period.choices, help_text="Calendar month, quarter or year, in UTC.")
    alert_thresholds = PercentListField(
        label="Alert thresholds (%)",
        initial="50, 75, 90, 100",
        help_text="Percentages of the amount, increasing, separated by commas: 50, 75, 90, 100.",
        widget=forms.TextInput(),
    )
    is_active = forms.BooleanField(label="Active (alerts are sent)", required=False, initial=True)

    def __init__(self, *args: Any, account: Account, budget: Budget | None = None, **kwargs: Any) -> None:
        if budget is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": budget.name,
                    "amount": round_money(budget.amount, budget.currency),
                    "period": budget.period,
                    "alert_thresholds": budget.alert_thresholds,
                    "is_active": budget.is_active,
                },
            )
        super().__init__(*args, **kwargs)
        self.account = account
        self.budget = budget
        # The amount is in the account currency, to its minor unit (no cents for JPY).
        places = minor_unit(account.currency)
        self.fields["amount"] = forms.DecimalField(
            label=f"Amount ({account.currency})",
            # As many whole digits as the column holds.
            max_digits=AMOUNT_MAX_DIGITS - AMOUNT_DECIMAL_PLACES + places,
            decimal_places=places,
            min_value=Decimal(1).scaleb(-places),
            help_text=f"Per period, in {account.currency}, tax included.",
            widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "any"}),
        )
        if budget is None:
            del self.fields["is_active"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Budget.objects.filter(account=self.account, name=name)
        if self.budget is not None:
            taken = taken.exclude(pk=self.budget.pk)
        if taken.exists():
            raise ValidationError(ERR_BUDGET_NAME_TAKEN.format(name=name), code="unique")
        return name

    def clean_alert_thresholds(self) -> list[int]:
        thresholds = self.cleaned_data["alert_thresholds"]
        validate_thresholds(thresholds)
        return thresholds


class ApiKeyForm(PortalForm):
    name = forms.CharField(max_length=120, help_text="What the key is for, e.g. “production ingest”.")
    scopes = forms.MultipleChoiceField(
        choices=[
            ("ingest", "Ingest: send usage events"),
            ("read", "Read: usage, billing, invoices and disputes"),
            ("disputes", "Disputes: open disputes on invoices and reply on them"),
            ("subscription", "Subscription: read the plan and request plan changes"),
            ("webhooks", "Webhooks: manage the account's webhook endpoints"),
        ],
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one scope."},
    )
    tenant = forms.ModelChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        empty_label="Any tenant of the account",
        label="Tenant pin",
        help_text="Optional: the key may only report and read this tenant's usage (not for the disputes, "
        "subscription or webhooks scopes: disputes, the plan and webhook endpoints are the account's).",
    )
    expires_on = forms.DateField(
        required=False,
        label="Expires on",
        help_text="Optional: the key stops working at 00:00 UTC on this date.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, account: Account, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        self.fields["tenant"].queryset = Tenant.objects.filter(account=account).order_by("name")
        self.fields["tenant"].label_from_instance = lambda t: f"{t.name} ({t.public_id})"
        self.fields["expires_on"].widget.attrs["min"] = (clock.now().date() + dt.timedelta(days=1)).isoformat()

    def clean_expires_on(self) -> dt.date | None:
        day = self.cleaned_data["expires_on"]
        if day is not None and day <= clock.now().date():
            raise ValidationError(ERR_EXPIRY_PAST, code="past")
        return day

    @property
    def expires_at(self) -> dt.datetime | None:
        day = self.cleaned_data.get("expires_on")
        return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) if day else None


class InviteForm(PortalForm):
    email = forms.EmailField(label="E-mail address", max_length=254)
    role = forms.ChoiceField(
        choices=AccountUser.Role.choices,
        initial=AccountUser.Role.MEMBER,
        help_text=(
            "Owner: everything, including users. Admin: API keys and budgets. Billing: invoices. Member: read-only."
        ),
    )

    def clean_email(self) -> str:
        # Whether the address has a login elsewhere is not the inviter's to know: ``account_user_invite`` decides.
        return self.cleaned_data["email"].strip().lower()


class RoleForm(PortalForm):
    role = forms.ChoiceField(choices=AccountUser.Role.choices)


class AutoCollectionForm(PortalForm):
    """The Billing page's switch: ``enabled=on`` turns automatic collection on, ``off`` turns it off."""

    enabled = forms.TypedChoiceField(
        choices=[("on", "On"), ("off", "Off")], coerce=lambda value: value == "on", label="Automatic collection"
    )
