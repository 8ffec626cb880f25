"""PDFs of invoices and credit notes, rendered with WeasyPrint from Django templates.

``document_request`` (called after finalization, after a credit note is issued, and whenever an invoice's
balance or status changes: payment, credit, write-off, void) marks the PDF as wanted and queues one render
after commit; asking again while a render is pending does not queue another, so bursts of re-renders
collapse into one. ``document_render`` does the work (the Celery task calls it); ``document_ready`` renders
on the spot when a PDF is needed now (an e-mail attachment, a download) and none is stored yet, or its
file is gone. Renders are deterministic: the same invoice state gives the same bytes.

Files are stored under a content-addressed name (``documents/INV-2026-000001-<sha256[:12]>.pdf``): a new
render never overwrites the file a committed row points at, and the previous file is deleted only once the
row pointing at the new one is committed. Customers and staff always download it as ``<number>.pdf``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from django.core.files.base import ContentFile
from django.db import transaction
from django.template.loader import render_to_string

from billing.models import CreditNote, Document, Invoice
from billing.presentation import credit_note_context, invoice_context
from common import clock
from common.enqueue import enqueue, enqueue_on_commit
from common.errors import BillingError

logger = logging.getLogger(__name__)
# A render or e-mail still waiting after this long lost its task: the sweep queues it again.
RENDER_TASK = "billing.render_document"
RENDER_BATCH_TASK = "billing.render_documents"
STALE_AFTER = dt.timedelta(minutes=10)

ERR_DRAFT = "Invoice {invoice} is a draft: it has no PDF until it is finalized (staff can preview it)."


def _document_for(
    *, invoice: Invoice | None, credit_note: CreditNote | None, now: dt.datetime
) -> tuple[Document, bool]:
    if (invoice is None) == (credit_note is None):
        raise ValueError("Give exactly one of invoice or credit_note.")
    if invoice is not None and invoice.status == Invoice.Status.DRAFT:
        raise BillingError(ERR_DRAFT.format(invoice=invoice), code="invoice_draft", status=409)
    lookup = {"invoice": invoice} if invoice is not None else {"credit_note": credit_note}
    return Document.objects.get_or_create(**lookup, defaults={"requested_at": now})


def document_request(
    *, invoice: Invoice | None = None, credit_note: CreditNote | None = None, now: dt.datetime | None = None
) -> Document:
    """Ask for the PDF to be (re-)rendered. Queues the render task after commit, unless one is pending."""
    now = now or clock.now()
    document, created = _document_for(invoice=invoice, credit_note=credit_note, now=now)
    # Only the request that moves the document into "pending" queues a task: the others collapse into it.
    moved = created or (
        Document.objects.filter(pk=document.pk)
        .exclude(status=Document.Status.PENDING)
        .update(status=Document.Status.PENDING, requested_at=now)
    )
    if moved:
        enqueue_on_commit(RENDER_TASK, document.pk)
        document.refresh_from_db()
    return document


def _render(template: str, context: dict, identifier: str) -> tuple[bytes, int]:
    """HTML to PDF bytes and page count. No network: the templates carry their own styles and fonts
    come from the system (DejaVu). The PDF's dates and identifier come from the document, never the clock."""
    from weasyprint import HTML  # here, not at the top: importing WeasyPrint takes about a second

    html = render_to_string(template, context)
    rendered = HTML(string=html, base_url=None).render()
    pdf = rendered.write_pdf(pdf_identifier=identifier.encode())
    return pdf, len(rendered.pages)


def _file_exists(document: Document) -> bool:
    """The row names a file and the storage still has it (a restore without media, a manual clean-up)."""
    return bool(document.file.name) and document.file.storage.exists(document.file.name or "")


def _is_ready(document: Document) -> bool:
    return document.status == Document.Status.READY and _file_exists(document)


def _store(document: Document, pdf: bytes, digest: str) -> None:
    """Point the document at its content-addressed file, writing it unless an identical render left it
    there; the previous file goes only after commit (a rollback leaves the old row and its file intact)."""
    storage = document.file.storage
    stem = document.filename.removesuffix(".pdf")
    name = f"documents/{stem}-{digest[:12]}.pdf"
    if not storage.exists(name):
        name = storage.save(name, ContentFile(pdf))
    previous = document.file.name if document.file else ""
    document.file.name = name
    if previous and previous != name:
        transaction.on_commit(lambda: storage.delete(previous), robust=True)


def _render_document(document: Document) -> tuple[bytes, int]:
    if document.invoice_id:
        invoice = Invoice.objects.select_related("account").get(pk=document.invoice_id)
        return _render("billing/pdf/invoice.html", invoice_context(invoice), str(invoice))
    if document.credit_note_id is None:
        raise BillingError("The document belongs to no invoice or credit note.", code="document_orphaned")
    note = CreditNote.objects.select_related("invoice", "invoice__account", "account").get(pk=document.credit_note_id)
    return _render("billing/pdf/credit_note.html", credit_note_context(note), str(note))


def document_pdf_bytes(document: Document) -> bytes:
    """Render the PDF (pure: reads the database, writes nothing)."""
    return _render_document(document)[0]


def invoice_preview_pdf(*, invoice: Invoice) -> bytes:
    """A PDF of the invoice as it stands, not stored: drafts carry the "DRAFT — not a valid invoice" mark."""
    invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
    return _render("billing/pdf/invoice.html", invoice_context(invoice), str(invoice))[0]


def document_render(*, document_id: int, now: dt.datetime | None = None) -> Document:
    """Render and store the PDF. Idempotent: a document already rendered since its last request is kept."""
    now = now or clock.now()
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=document_id)
        if document.rendered_at and _is_ready(document):
            return document
        try:
            pdf, pages = _render_document(document)
        except Exception as exc:  # a broken template or font must not lose the request: it stays visible
            logger.exception("Rendering %s failed", document)
            document.status, document.error = Document.Status.FAILED, f"{type(exc).__name__}: {exc}"
            document.save(update_fields=["status", "error"])
            return document
        document.sha256 = hashlib.sha256(pdf).hexdigest()
        _store(document, pdf, document.sha256)
        document.size = len(pdf)
        document.pages = pages
        document.status, document.error = Document.Status.READY, ""
        document.rendered_at = now
        document.renders += 1
        document.save()
    return document


def document_ready(*, invoice: Invoice | None = None, credit_note: CreditNote | None = None) -> Document:
    """The stored PDF, rendered now if it is missing, pending, failed or its file is gone: when the returned
    document is ready, its file exists. A draft invoice has none (``invoice_draft``)."""
    now = clock.now()
    document, _ = _document_for(invoice=invoice, credit_note=credit_note, now=now)
    if not _is_ready(document):
        document = document_render(document_id=document.pk, now=now)
    return document


def document_for_download(*, invoice: Invoice | None = None, credit_note: CreditNote | None = None) -> Document | None:
    """The PDF to hand a customer now, or ``None`` when it is not available. A failed render is not retried
    inside the customer's request: it is queued again (repeated clicks collapse into that one render, which
    keeps the last error until it succeeds) and the customer is asked to come back. A PDF never rendered
    yet, or pending after a change, is rendered on the spot."""
    now = clock.now()
    document, _ = _document_for(invoice=invoice, credit_note=credit_note, now=now)
    if _is_ready(document):
        return document
    if document.status == Document.Status.FAILED or document.error:
        document_request(invoice=invoice, credit_note=credit_note, now=now)
        return None
    document = document_render(document_id=document.pk, now=now)
    return document if document.status == Document.Status.READY else None


def documents_request_for_invoices(*, invoice_ids: list[int], now: dt.datetime) -> None:
    """Queue the first render of newly finalized invoices (one task each, after commit)."""
    if not invoice_ids:
        return
    Document.objects.bulk_create(
        [Document(invoice_id=pk, requested_at=now) for pk in invoice_ids], ignore_conflicts=True
    )
    ids = list(
        Document.objects.filter(invoice_id__in=invoice_ids, status=Document.Status.PENDING).values_list("pk", flat=True)
    )
    # One message for the batch; robust: the invoices stay finalized if the broker is down (the sweep
    # queues the renders again).
    if ids:
        enqueue_on_commit(RENDER_BATCH_TASK, ids)


def documents_requeue_stale(*, now: dt.datetime, older_than: dt.timedelta = STALE_AFTER) -> int:
    """Queue again the renders asked for more than ``older_than`` ago and still pending (lost tasks).

    Their ``requested_at`` moves to ``now``, so during a backlog each is queued again at most once per
    ``older_than`` instead of at every sweep."""
    ids = list(
        Document.objects.filter(status=Document.Status.PENDING, requested_at__lt=now - older_than).values_list(
            "pk", flat=True
        )[:1000]
    )
    if ids:
        Document.objects.filter(pk__in=ids, status=Document.Status.PENDING).update(requested_at=now)
        enqueue(RENDER_BATCH_TASK, ids)
    return len(ids)
