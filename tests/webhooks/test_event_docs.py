"""Every event type the product records is deliverable and documented: in the catalogue endpoints subscribe to,
and in the API documentation (the schema's x-webhooks for Redoc, the Webhooks tag for Swagger UI) with an
example body."""

import re
from pathlib import Path

import pytest
import yaml

from webhooks.event_types import EVENT_TYPE_NAMES, EVENT_TYPES

ROOT = Path(__file__).resolve().parents[2]
# Event types as the emitting code names them: outbox_emit(type="..."), the quotas' and budgets' constants and the
# disputes' _emit(dispute, "...").
EMITTED = re.compile(r'(?:type=|_TYPE = |_emit\(dispute, |\(\s*)"(billing\.[a-z_]+)"')


def _emitted_types() -> set[str]:
    found = set()
    for app in ("billing", "disputes", "usage", "accounts", "webhooks"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "event_types.py":
                continue
            found |= set(EMITTED.findall(path.read_text()))
    # Celery task names and permissions share the prefix; only names that are outbox events remain.
    others = ("billing.render", "billing.send", "billing.add_", "billing.change_", "billing.view_", "billing.delete_")
    return {name for name in found if not name.startswith(others)}


def test_every_type_the_code_emits_is_in_the_catalogue():
    emitted = _emitted_types()
    assert {"billing.invoice_generated", "billing.usage_threshold", "billing.dispute_opened"} <= emitted
    assert emitted <= EVENT_TYPE_NAMES, emitted - EVENT_TYPE_NAMES


@pytest.mark.django_db
def test_the_api_docs_list_every_event_type_with_an_example(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    hooks = schema["x-webhooks"]
    assert set(hooks) == EVENT_TYPE_NAMES
    for event in EVENT_TYPES:
        post = hooks[event.name]["post"]
        example = post["requestBody"]["content"]["application/json"]["example"]
        assert example["type"] == event.name and example["data"] == event.example and event.example
        assert {p["name"] for p in post["parameters"]} == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    # Swagger UI shows it above the endpoint operations.
    tag = next(t for t in schema["tags"] if t["name"] == "Webhooks")
    for event in EVENT_TYPES:
        assert f"**`{event.name}`**" in tag["description"]
    assert "Standard Webhooks" in tag["description"]


@pytest.mark.django_db
def test_redoc_is_served_offline(client):
    response = client.get("/api/redoc/")
    assert response.status_code == 200
    assert b"/static/drf_spectacular_sidecar/redoc" in response.content
