"""Bank statements: import a CSV of the bank account's lines, match each credit to the invoice its reference
names, and record it as a bank transfer; staff match the rest by hand or ignore them.

The file: one line per row, ``date, amount, reference`` and optionally ``currency`` (the form's currency
otherwise), with or without a header row naming those columns (in any order). Dates are ``YYYY-MM-DD``,
amounts plain numbers (``1234.50``: a point, no thousands separators, no more places than the currency
has). Debits (zero or negative amounts) are skipped: only money received is reconciled.

Invariants:
- a file with any bad row is refused whole, every bad row named, and nothing is written;
- each line's ``line_key`` digests its date, amount, currency, reference and its occurrence among identical
  lines of the file, and is also the recorded payment's ``external_id``: importing a statement again (or an
  overlapping one) records nothing twice;
- a line is matched automatically only when its reference names exactly one invoice number, that invoice is
  open in the line's currency, and the amount is, to the cent, what is due on it or its total (what exceeds
  the amount due goes to the account's credit balance).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from accounts.models import Account
from billing.models import BankStatementLine, Invoice, Payment
from billing.services.payments import PERM_RECORD, payment_record, require_permission
from billing.services.reconciliation import statement_line_issue_close
from common import clock, locks
from common.errors import BillingError
from common.money import AMOUNT_LIMIT, CURRENCY_MINOR_UNITS, format_money, minor_unit

INVOICE_NUMBER = re.compile(r"INV-\d{4}-\d{6}", re.IGNORECASE)
# ASCII digits only (``\d`` would take any script's digits, and Decimal reads them).
PLAIN_AMOUNT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
# Larger than any month's statement; a bigger upload is refused before it is read.
MAX_STATEMENT_BYTES = 2 * 1024 * 1024
COLUMNS = ("date", "amount", "reference", "currency")
REQUIRED_COLUMNS = ("date", "amount", "reference")
MAX_ERRORS_SHOWN = 20
# Imports take turns (pg advisory lock of this namespace, key 0): two uploads of one file never race.
IMPORT_LOCK = 7_311
# Invoices a line matched to by hand takes nothing from: all of its money goes to the credit balance.
NOTHING_DUE = (Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE, Invoice.Status.VOID)

ERR_DENIED = "Only Finance admins may import bank statements or match their lines."
ERR_REFUSED = "The statement was not imported (nothing was written): {errors}"
ERR_MORE = "… and {count} more."
ERR_NOT_TEXT = "the file is not UTF-8 text (save the CSV as UTF-8)."
ERR_EMPTY = "the file has no statement lines."
ERR_UNREADABLE = "line {line}: {problem}"
ERR_COLUMNS = "line {line}: expected {expected} values (date, amount, reference[, currency]), found {found}"
ERR_HEADER_UNKNOWN = "line {line}: unknown column “{name}”; the columns are date, amount, reference and currency"
ERR_HEADER_MISSING = "line {line}: the header has no “{name}” column"
ERR_HEADER_TWICE = "line {line}: the header names “{name}” twice"
ERR_DATE = "line {line}: date “{value}” is not a date as YYYY-MM-DD"
ERR_DATE_FUTURE = "line {line}: date {value} is in the future"
ERR_AMOUNT = "line {line}: amount “{value}” is not a number"
ERR_AMOUNT_SEPARATORS = "line {line}: amount “{value}” must be a plain number such as 1234.50 (no thousands separators)"
ERR_AMOUNT_PLACES = "line {line}: amount {value} has more decimal places than {currency} has ({places})"
ERR_AMOUNT_LARGE = "line {line}: amount {value} is too large"
ERR_CURRENCY = "line {line}: currency “{value}” is not one we bill in ({choices})"
ERR_REFERENCE_LONG = "line {line}: the reference is longer than 255 characters"
ERR_REFERENCE_CONTROL = "line {line}: the reference has control characters (such as NUL)"
ERR_TOO_LARGE = "The file is larger than {limit} MB: split the statement, or export a shorter period."
ERR_DEFAULT_CURRENCY = "Choose the statement's currency."

ERR_LINE_NOT_OPEN = "Only a line waiting for staff can be matched or ignored; this one is {status}."
ERR_MATCH_TARGET = "Choose the invoice or the account the money came from."
ERR_MATCH_CURRENCY = "The line is in {line}; {target} is billed in {billed}."
ERR_NOTE = "Give a note: why the line is ignored."

NOTE_MATCHED = "Matched to {number} by its number and amount."
NOTE_NO_NUMBER = "No invoice number in the reference."
NOTE_SEVERAL = "Several invoice numbers in the reference ({numbers}): match by hand."
NOTE_UNKNOWN = "{number} is not one of our invoices."
NOTE_OTHER_CURRENCY = "{number} is billed in {billed}; the line is in {currency}."
NOTE_NOT_OPEN = "{number} is {status}: nothing is due on it."
NOTE_AMOUNT = "{amount} is neither what is due on {number} ({due}) nor its total ({total})."
NOTE_NOT_RECORDED = "Not recorded: {error}"
NOTE_MATCHED_BY_HAND = "Matched by hand to {target} by {user}."
NOTE_IGNORED = "Ignored by {user}: {note}"


@dataclass(frozen=True)
class ParsedLine:
    row: int  # the line of the file (1 is the first)
    booked_on: dt.date
    amount: Decimal
    currency: str
    reference: str


@dataclass(frozen=True)
class StatementImport:
    """What an import did: lines read, recorded (matched), left for staff, already imported, debits skipped."""

    read: int
    matched: int
    unmatched: int
    duplicates: int
    debits: int
    lines: list[BankStatementLine]

    @property
    def message(self) -> str:
        return (
            f"{self.read} line(s) read: {self.matched} matched and recorded, {self.unmatched} left to match by "
            f"hand, {self.duplicates} imported before, {self.debits} debit(s) skipped."
        )


def _error(message: str, **values: Any) -> str:
    return message.format(**values)


def _header(cells: list[str], row: int, errors: list[str]) -> dict[str, int] | None:
    """The column positions a header row names, or ``None`` when the row is data."""
    names = [c.strip().lower() for c in cells]
    if "date" not in names or "amount" not in names:
        return None
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name not in COLUMNS:
            errors.append(_error(ERR_HEADER_UNKNOWN, line=row, name=cells[index].strip()))
        elif name in positions:
            errors.append(_error(ERR_HEADER_TWICE, line=row, name=name))
        else:
            positions[name] = index
    for name in REQUIRED_COLUMNS:
        if name not in positions:
            errors.append(_error(ERR_HEADER_MISSING, line=row, name=name))
    return positions


def _amount(text: str, currency: str, row: int, errors: list[str]) -> Decimal | None:
    if not PLAIN_AMOUNT.fullmatch(text):
        template = (
            ERR_AMOUNT_SEPARATORS
            if re.fullmatch(r"[+-]?[0-9.,' ]+", text) and any(c.isdigit() for c in text)
            else ERR_AMOUNT
        )
        errors.append(_error(template, line=row, value=text))
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        errors.append(_error(ERR_AMOUNT, line=row, value=text))
        return None
    places = minor_unit(currency)
    if -amount.as_tuple().exponent > places:  # type: ignore[operator]
        errors.append(_error(ERR_AMOUNT_PLACES, line=row, value=text, currency=currency, places=places))
        return None
    if abs(amount) >= AMOUNT_LIMIT:
        errors.append(_error(ERR_AMOUNT_LARGE, line=row, value=text))
        return None
    return amount.quantize(Decimal(1).scaleb(-places))


def statement_parse(*, content: bytes | str, currency: str, today: dt.date) -> list[ParsedLine]:
    """Every line of the file, credits and debits; raises ``BillingError`` naming each bad row."""
    if currency not in CURRENCY_MINOR_UNITS:
        raise BillingError(ERR_DEFAULT_CURRENCY, code="required", field="currency")
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BillingError(
                ERR_REFUSED.format(errors=ERR_NOT_TEXT), code="invalid_statement", field="file"
            ) from None
    errors: list[str] = []
    lines: list[ParsedLine] = []
    positions: dict[str, int] | None = None
    header_width = 0
    seen_first = False
    reader = csv.reader(io.StringIO(content.lstrip("\ufeff")), skipinitialspace=True)
    try:
        for cells in reader:
            row = reader.line_num
            if not any(c.strip() for c in cells):
                continue
            if not seen_first:
                seen_first = True
                positions = _header(cells, row, errors)
                if positions is not None:
                    header_width = len(cells)
                    if any(name not in positions for name in REQUIRED_COLUMNS):
                        break  # the rows cannot be read without those columns
                    continue
            if positions is None:
                if len(cells) not in (3, 4):
                    errors.append(_error(ERR_COLUMNS, line=row, expected="3 or 4", found=len(cells)))
                    continue
                values = dict(zip(COLUMNS, cells, strict=False))
            else:
                if len(cells) != header_width:
                    errors.append(_error(ERR_COLUMNS, line=row, expected=header_width, found=len(cells)))
                    continue
                values = {name: cells[index] for name, index in positions.items()}
            parsed = _parse_row(values, row, currency, today, errors)
            if parsed is not None:
                lines.append(parsed)
    except csv.Error as exc:
        errors.append(_error(ERR_UNREADABLE, line=reader.line_num, problem=str(exc)))
    if not errors and not lines:
        errors.append(ERR_EMPTY)
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        if len(errors) > MAX_ERRORS_SHOWN:
            shown.append(ERR_MORE.format(count=len(errors) - MAX_ERRORS_SHOWN))
        raise BillingError(ERR_REFUSED.format(errors="; ".join(shown)), code="invalid_statement", field="file")
    return lines


def _parse_row(
    values: dict[str, str], row: int, default_currency: str, today: dt.date, errors: list[str]
) -> ParsedLine | None:
    text_currency = values.get("currency", "").strip().upper()
    currency = text_currency or default_currency
    failed = len(errors)
    if currency not in CURRENCY_MINOR_UNITS:
        errors.append(_error(ERR_CURRENCY, line=row, value=text_currency, choices=", ".join(CURRENCY_MINOR_UNITS)))
    text_date = values["date"].strip()
    booked_on = None
    try:
        booked_on = dt.date.fromisoformat(text_date) if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text_date) else None
    except ValueError:
        booked_on = None
    if booked_on is None:
        errors.append(_error(ERR_DATE, line=row, value=text_date))
    elif booked_on > today:
        errors.append(_error(ERR_DATE_FUTURE, line=row, value=text_date))
    amount = _amount(values["amount"].strip(), currency, row, errors) if currency in CURRENCY_MINOR_UNITS else None
    reference = " ".join(values["reference"].split())
    if len(reference) > 255:
        errors.append(_error(ERR_REFERENCE_LONG, line=row))
    elif re.search(r"[\x00-\x1f\x7f]", reference):
        errors.append(_error(ERR_REFERENCE_CONTROL, line=row))
    if len(errors) > failed or booked_on is None or amount is None:
        return None
    return ParsedLine(row=row, booked_on=booked_on, amount=amount, currency=currency, reference=reference)


def statement_line_key(line: ParsedLine, occurrence: int) -> str:
    text = f"{line.booked_on.isoformat()}|{line.amount}|{line.currency}|{line.reference}|{occurrence}"
    return hashlib.sha256(text.encode()).hexdigest()


def _received_at(booked_on: dt.date) -> dt.datetime:
    return dt.datetime.combine(booked_on, dt.time(0), tzinfo=dt.UTC)


def _match(line: ParsedLine) -> tuple[Invoice | None, Decimal, str]:
    """The invoice the line pays and the amount applied to it, or ``None`` and the reason it is left."""
    numbers = list(dict.fromkeys(n.upper() for n in INVOICE_NUMBER.findall(line.reference)))
    if not numbers:
        return None, Decimal(0), NOTE_NO_NUMBER
    if len(numbers) > 1:
        return None, Decimal(0), NOTE_SEVERAL.format(numbers=", ".join(numbers))
    number = numbers[0]
    invoice = Invoice.objects.select_related("account").filter(number=number).first()
    if invoice is None:
        return None, Decimal(0), NOTE_UNKNOWN.format(number=number)
    if invoice.currency != line.currency:
        return (
            None,
            Decimal(0),
            NOTE_OTHER_CURRENCY.format(number=number, billed=invoice.currency, currency=line.currency),
        )
    if invoice.status != Invoice.Status.FINALIZED or invoice.amount_due <= 0:
        return None, Decimal(0), NOTE_NOT_OPEN.format(number=number, status=invoice.get_status_display().lower())
    if line.amount == invoice.amount_due:
        return invoice, line.amount, NOTE_MATCHED.format(number=number)
    if line.amount == invoice.total:
        return invoice, invoice.amount_due, NOTE_MATCHED.format(number=number)
    return (
        None,
        Decimal(0),
        NOTE_AMOUNT.format(
            amount=format_money(line.amount, line.currency),
            number=number,
            due=format_money(invoice.amount_due, invoice.currency),
            total=format_money(invoice.total, invoice.currency),
        ),
    )


@transaction.atomic
def bank_statement_import(
    *, content: bytes | str, currency: str, actor: Any = None, now: dt.datetime | None = None
) -> StatementImport:
    """Import a statement: each new credit line is matched and recorded, or left for staff. All or nothing."""
    now = now or clock.now()
    require_permission(actor, PERM_RECORD, ERR_DENIED)
    parsed = statement_parse(content=content, currency=currency, today=(now + dt.timedelta(days=1)).date())
    locks.lock(IMPORT_LOCK, 0)
    credits = [line for line in parsed if line.amount > 0]
    occurrences: Counter[tuple[Any, ...]] = Counter()
    keyed = []
    for line in credits:
        identity = (line.booked_on, line.amount, line.currency, line.reference)
        occurrences[identity] += 1
        keyed.append((statement_line_key(line, occurrences[identity]), line))
    known = set(BankStatementLine.objects.filter(line_key__in=[k for k, _ in keyed]).values_list("line_key", flat=True))
    user = actor if getattr(actor, "is_authenticated", False) else None
    created: list[BankStatementLine] = []
    for key, line in keyed:
        if key in known:
            continue
        invoice, applied, note = _match(line)
        payment = None
        if invoice is not None:
            try:
                with transaction.atomic():
                    payment = payment_record(
                        account=invoice.account,
                        amount=line.amount,
                        provider=Payment.Provider.BANK_TRANSFER,
                        received_at=_received_at(line.booked_on),
                        currency=line.currency,
                        reference=line.reference,
                        allocations=[(invoice, applied)],
                        external_id=key,
                        note=note,
                        actor=actor,
                        now=now,
                    )
            except BillingError as exc:
                note = NOTE_NOT_RECORDED.format(error=exc.message)
        created.append(
            BankStatementLine.objects.create(
                line_key=key,
                booked_on=line.booked_on,
                amount=line.amount,
                currency=line.currency,
                reference=line.reference,
                status=BankStatementLine.Status.MATCHED if payment else BankStatementLine.Status.UNMATCHED,
                payment=payment,
                note=note[:500],
                imported_at=now,
                imported_by=user,
            )
        )
    matched = sum(1 for line in created if line.status == BankStatementLine.Status.MATCHED)
    return StatementImport(
        read=len(parsed),
        matched=matched,
        unmatched=len(created) - matched,
        duplicates=len(keyed) - len(created),
        debits=len(parsed) - len(credits),
        lines=created,
    )


def _locked_open_line(line: BankStatementLine) -> BankStatementLine:
    line = BankStatementLine.objects.select_for_update().get(pk=line.pk)
    if line.status != BankStatementLine.Status.UNMATCHED:
        raise BillingError(
            ERR_LINE_NOT_OPEN.format(status=line.get_status_display().lower()), code="line_not_open", status=409
        )
    return line


@transaction.atomic
def bank_statement_line_match(
    *,
    line: BankStatementLine,
    invoice: Invoice | None = None,
    account: Account | None = None,
    note: str = "",
    actor: Any = None,
    now: dt.datetime | None = None,
) -> BankStatementLine:
    """Staff say where a line's money came from: an invoice (paid up to what is due on it, the rest to the
    account's credit balance) or an account (its open invoices, oldest first, then the balance)."""
    now = now or clock.now()
    require_permission(actor, PERM_RECORD, ERR_DENIED)
    if invoice is None and account is None:
        raise BillingError(ERR_MATCH_TARGET, code="required", field="invoice")
    line = _locked_open_line(line)
    if invoice is not None:
        invoice = Invoice.objects.select_related("account").get(pk=invoice.pk)
        account, target, billed = invoice.account, invoice.number or str(invoice), invoice.currency
    else:
        assert account is not None
        target, billed = str(account), account.currency
    if billed != line.currency:
        raise BillingError(
            ERR_MATCH_CURRENCY.format(line=line.currency, target=target, billed=billed),
            code="currency_mismatch",
            field="invoice" if invoice is not None else "account",
        )
    allocations = [(invoice, min(line.amount, invoice.amount_due))] if invoice is not None else None
    if invoice is not None and invoice.status in NOTHING_DUE:
        allocations = []  # paid meanwhile, written off or voided: the money is the account's credit balance
    user = actor if getattr(actor, "is_authenticated", False) else None
    summary = NOTE_MATCHED_BY_HAND.format(target=target, user=user or "the system")
    if note.strip():
        summary = f"{summary} {' '.join(note.split())}"
    payment = payment_record(
        account=account,
        amount=line.amount,
        provider=Payment.Provider.BANK_TRANSFER,
        received_at=_received_at(line.booked_on),
        currency=line.currency,
        reference=line.reference,
        allocations=allocations,
        external_id=line.line_key,
        note=summary[:500],
        actor=actor,
        now=now,
    )
    line.status, line.payment, line.note = BankStatementLine.Status.MATCHED, payment, summary[:500]
    line.save(update_fields=["status", "payment", "note"])
    statement_line_issue_close(line=line, resolution=f"{summary} ({payment.public_id})", actor=actor, now=now)
    return line


@transaction.atomic
def bank_statement_line_ignore(
    *, line: BankStatementLine, note: str, actor: Any = None, now: dt.datetime | None = None
) -> BankStatementLine:
    """A line that is no customer's money (a bank fee refund, a transfer between our accounts): ignored, with why."""
    now = now or clock.now()
    require_permission(actor, PERM_RECORD, ERR_DENIED)
    note = " ".join(note.split())
    if not note:
        raise BillingError(ERR_NOTE, code="required", field="note")
    line = _locked_open_line(line)
    user = actor if getattr(actor, "is_authenticated", False) else None
    summary = NOTE_IGNORED.format(user=user or "the system", note=note)[:500]
    line.status, line.note = BankStatementLine.Status.IGNORED, summary
    line.save(update_fields=["status", "note"])
    statement_line_issue_close(line=line, resolution=summary, actor=actor, now=now)
    return line
