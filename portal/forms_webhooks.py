"""The portal's webhook endpoint form: URL, description and the event types it receives."""

from __future__ import annotations

from django import forms

from portal.forms import PortalForm
from webhooks.event_types import EVENT_TYPES, OPT_IN, TEST_EVENT


def _choices() -> list[tuple[str, str]]:
    return [(event.name, event.name) for event in EVENT_TYPES if event.name != TEST_EVENT]


class WebhookEndpointForm(PortalForm):
    url = forms.URLField(
        label="URL",
        max_length=2000,
        assume_scheme="https",
        help_text="Where Ledgerline POSTs the events: an https address your systems answer on.",
    )
    description = forms.CharField(max_length=200, required=False, help_text="What the endpoint is for.")
    event_types = forms.MultipleChoiceField(
        label="Event types",
        choices=_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event type except "
        + ", ".join(sorted(OPT_IN))
        + ", which is sent only to endpoints that tick it.",
    )
