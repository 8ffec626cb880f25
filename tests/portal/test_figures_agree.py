"""The portal's figures agree with each other and with the invoice: the tenant count billed is the count its
limit meter shows; an included allowance past which overage is billed reads as overage, not as a limit
reached; storage has the same decimals in every table and in the PDF, and its tenant rows add up.

One hand-built account on the Business plan (10 tenants and 25,000 messages included, limits at the same
figures; tenants $19.00 per tenant-month, messages $0.03 each, 10 GB-months of storage included, then
$1.50 per GB-month), read on November 20, 2026 at 15:00 UTC."""

import datetime as dt
import io
import re

import pytest
import time_machine
from pypdf import PdfReader

from accounts.services import account_user_create
from billing.models import Invoice
from billing.services.documents import document_ready
from common import clock
from tenants.services import tenant_archive
from tests.accounts.factories import AccountFactory
from tests.billing.cycle import CLOSE_AT, JAN_1, close, event, ingest, subscribe
from tests.tenants.factories import MasterPartnerFactory, TenantFactory

pytestmark = pytest.mark.django_db
UTC = dt.UTC
NOW = dt.datetime(2026, 11, 20, 15, tzinfo=UTC)
PASSWORD = "portal-pass-123"


@pytest.fixture
def contoso(plan, client):
    """12 tenants live since January, one of them (ten_co_11) archived on November 10; 31,000 messages and
    three tenants' storage in November; the owner signed in, the clock at ``NOW``."""
    clock.clock_set(at=NOW, allow_backwards=True)
    account = AccountFactory(name="Contoso Shipping")
    subscribe(account, plan("messaging-business"), started_at=JAN_1)
    tenants = [
        TenantFactory(account=account, public_id=f"ten_co_{i:02d}", name=f"Contoso {i:02d}", activated_at=JAN_1)
        for i in range(12)
    ]
    tenant_archive(tenant=tenants[11], at=dt.datetime(2026, 11, 10, tzinfo=UTC))
    ingest(
        account,
        [
            event("m1", "ten_co_00", "messages", 12_400, "2026-11-10T10:00:00Z"),
            event("m2", "ten_co_01", "messages", 18_600, "2026-11-10T10:00:00Z"),
            # Storage levels (GB) from these moments on.
            event("s0", "ten_co_00", "storage_gb", 1, "2026-11-01T00:00:00Z"),
            event("s1", "ten_co_01", "storage_gb", 1, "2026-11-01T01:00:00Z"),
            event("s2", "ten_co_02", "storage_gb", 3, "2026-11-05T00:00:00Z"),
        ],
        now=NOW,
    )
    account_user_create(account=account, email="owner@contoso.example", role="owner", password=PASSWORD)
    client.login(username="owner@contoso.example", password=PASSWORD)
    return account


def metric_row(html: str, code: str) -> str:
    return re.search(rf'<tr data-metric="{code}">(.*?)</tr>', html, re.S).group(1)


def cell(row: str, label: str) -> str:
    return re.search(rf'data-label="{label}">(.*?)</td>', row, re.S).group(1).strip()


def figures(row: str) -> tuple[str, str, str]:
    """A metric row's quantity, included and billable overage."""
    return cell(row, "Quantity"), cell(row, "Included"), cell(row, "Billable overage")


def words(fragment: str) -> str:
    """The text of an HTML fragment as seen on screen: tags and text for screen readers only dropped."""
    fragment = re.sub(r'<span class="visually-hidden">[^<]*</span>', "", fragment)
    return " ".join(re.sub(r"<[^>]+>", "", fragment).split())


def tenant_cells(html: str, label: str) -> dict[str, str]:
    """Per tenant, the by-tenant table's cell in the column ``label``."""
    table = html.split('id="tenants-heading"', 1)[1].split("</table>", 1)[0]
    return {
        tenant: value
        for tenant, value in re.findall(
            rf'<span class="muted">(ten_\w+)</span></th>.*?data-label="{label}">([^<]*)</td>', table, re.S
        )
    }


def test_the_billed_tenant_count_and_its_limit_meter_agree_after_a_tenant_is_archived(contoso, client):
    row = metric_row(client.get("/portal/").content.decode(), "tenants")
    # Billed: the 12 tenants live at some time in November (ten_co_11 until the 10th), 10 included:
    # 2 × $19.00 = $38.00.
    assert figures(row) == ("12", "10", "2")
    assert cell(row, "Charge") == "USD 38.00"
    # The meter counts the same 12: 2 over the 10 included (not "11 of 10").
    limit = words(cell(row, "Limit"))
    assert limit.startswith("10 included — 2 over, billed at USD 19.00 per tenant-month")
    assert "11 of 10" not in limit
    # And the count of tenants live now is labelled as such.
    assert "every tenant live at any time this month counts; 11 live now" in words(row)


def test_messages_past_the_included_allowance_read_as_billed_overage_not_as_a_limit_reached(contoso, client):
    html = client.get("/portal/").content.decode()
    row = metric_row(html, "messages")
    assert figures(row) == ("31,000", "25,000", "6,000")
    assert cell(row, "Charge") == "USD 180.00"  # 6,000 × $0.03
    limit = cell(row, "Limit")
    assert '<div class="meter overage"' in limit
    assert words(limit) == "25,000 included — 6,000 over, billed at USD 0.03 per message"
    assert '<span class="visually-hidden">, past the included quantity, billed as overage</span>' in limit
    assert "limit reached" not in limit
    assert "Limits never block usage." in html


def test_a_limit_without_an_overage_price_reads_limit_reached_and_not_blocked(plan, client):
    """Startup: at most 10 master partners, nothing priced beyond them; the 11th is over a real limit."""
    clock.clock_set(at=NOW, allow_backwards=True)
    account = AccountFactory(name="Fabrikam Couriers")
    subscribe(account, plan("messaging-startup"), started_at=JAN_1)
    TenantFactory(account=account, public_id="ten_fab", activated_at=JAN_1)
    for n in range(11):
        MasterPartnerFactory(account=account, public_id=f"prt_carrier_{n:03d}", activated_at=JAN_1)
    account_user_create(account=account, email="owner@fabrikam.example", role="owner", password=PASSWORD)
    client.login(username="owner@fabrikam.example", password=PASSWORD)

    limit = cell(metric_row(client.get("/portal/").content.decode(), "master_partners"), "Limit")
    assert '<div class="meter over"' in limit
    assert words(limit) == "11 of 10 (110 %) limit reached, usage not blocked"


def test_storage_has_two_decimals_in_every_table_and_in_the_pdf_and_its_tenant_rows_add_up(contoso, client):
    html = client.get("/portal/").content.decode()
    # GB-months so far (471 hours of November's 720): 1 GB × 471 h = 0.65416667, 1 GB × 470 h = 0.65277778,
    # 3 GB × 375 h = 1.5625; in all 2.86944444.
    row = metric_row(html, "storage_gb")
    assert figures(row) == ("2.87", "10.00", "0.00")
    # Each tenant to 2 decimals too, adding up to the 2.87 shown (rounded on their own: 0.65 + 0.65 + 1.56 = 2.86;
    # the largest remainder, ten_co_00's 0.41667 hundredths, takes the missing hundredth).
    storage = tenant_cells(html, "Storage")
    assert (storage.pop("ten_co_00"), storage.pop("ten_co_01"), storage.pop("ten_co_02")) == ("0.66", "0.65", "1.56")
    assert set(storage.values()) == {"–"}  # the other nine tenants store nothing

    # The month closed: 1 GB × 720 h = 1, 1 GB × 719 h = 0.99861111, 3 GB × 624 h = 2.6; in all 4.59861111.
    clock.clock_set(at=CLOSE_AT)
    close()
    invoice = Invoice.objects.get(account=contoso)
    with time_machine.travel(CLOSE_AT, tick=False):
        document = document_ready(invoice=invoice)
    with document.file.open("rb") as handle:
        text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(handle.read())).pages)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "Storage 4.60 10.00 0.00 USD 1.50 USD 0.00" in lines
    # Each tenant's share: 1.00 + 1.00 + 2.60 = 4.60 (ten_co_01's 0.99861111 shown as 1.00).
    assert [line for line in lines if line.startswith("Storage ")] == [
        "Storage 4.60 10.00 0.00 USD 1.50 USD 0.00",
        "Storage 1.00 USD 0.00",
        "Storage 1.00 USD 0.00",
        "Storage 2.60 USD 0.00",
    ]
    page = client.get(f"/portal/invoices/{invoice.number}/").content.decode()
    charges, by_tenant = page.split('id="tenants-heading"', 1)
    assert re.findall(r'Storage</th>\s*<td class="num" data-label="Quantity">([^<]*)</td>', charges) == ["4.60"]
    assert re.findall(r'Storage</th><td class="num" data-label="Quantity">([^<]*)</td>', by_tenant) == [
        "1.00",
        "1.00",
        "2.60",
    ]
