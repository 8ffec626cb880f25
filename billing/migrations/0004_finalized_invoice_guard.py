"""Database guard: a finalized (paid, void, uncollectible) invoice's identity, money and lines never change.

Services refuse such edits and the admin shows them read-only; this trigger makes even a raw SQL or
``QuerySet.update()`` fail with an integrity error. Balances (paid, credited, due), payment and void
times may still change; the status only moves from 'finalized' to 'paid', 'void' or 'uncollectible'.
PostgreSQL uses plpgsql; SQLite (demo) gets equivalent triggers.
"""

from django.db import migrations

LOCKED_COLUMNS = [
    "number",
    "account_id",
    "currency",
    "period_start",
    "period_end",
    "subtotal",
    "discount_total",
    "tax_rate",
    "tax_reverse_charge",
    "tax",
    "total",
    "finalized_at",
    "snapshot",
]
MESSAGE = "finalized invoice is immutable: issue a credit note instead"

PG_SQL = f"""
CREATE OR REPLACE FUNCTION billing_invoice_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.status <> 'draft' THEN
            RAISE EXCEPTION 'invoice %: {MESSAGE}', OLD.number USING ERRCODE = '23000';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.status <> 'draft' AND (
        NEW.status = 'draft'
        OR (NEW.status <> OLD.status AND NOT (OLD.status = 'finalized' AND NEW.status IN ('paid', 'void', 'uncollectible')))
        {"".join(f" OR NEW.{c} IS DISTINCT FROM OLD.{c}" for c in LOCKED_COLUMNS if c != "snapshot")}
        OR NEW.snapshot::jsonb IS DISTINCT FROM OLD.snapshot::jsonb
    ) THEN
        RAISE EXCEPTION 'invoice %: {MESSAGE}', OLD.number USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_guard BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_guard();

CREATE OR REPLACE FUNCTION billing_invoice_line_guard() RETURNS trigger AS $$
DECLARE
    parent_status text;
BEGIN
    SELECT status INTO parent_status FROM billing_invoice
        WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
    IF parent_status IS NOT NULL AND parent_status <> 'draft' THEN
        RAISE EXCEPTION 'invoice line: {MESSAGE}' USING ERRCODE = '23000';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.invoice_id <> OLD.invoice_id THEN
        SELECT status INTO parent_status FROM billing_invoice WHERE id = OLD.invoice_id;
        IF parent_status <> 'draft' THEN
            RAISE EXCEPTION 'invoice line: {MESSAGE}' USING ERRCODE = '23000';
        END IF;
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_line_guard BEFORE INSERT OR UPDATE OR DELETE ON billing_invoiceline
    FOR EACH ROW EXECUTE FUNCTION billing_invoice_line_guard();
"""

PG_REVERSE = """
DROP TRIGGER IF EXISTS billing_invoice_line_guard ON billing_invoiceline;
DROP FUNCTION IF EXISTS billing_invoice_line_guard();
DROP TRIGGER IF EXISTS billing_invoice_guard ON billing_invoice;
DROP FUNCTION IF EXISTS billing_invoice_guard();
"""

SQLITE_SQL = [
    f"""CREATE TRIGGER billing_invoice_guard_update BEFORE UPDATE ON billing_invoice
    WHEN OLD.status <> 'draft' AND (NEW.status = 'draft'
        OR (NEW.status <> OLD.status AND NOT (OLD.status = 'finalized' AND NEW.status IN ('paid', 'void', 'uncollectible')))
        {"".join(f" OR NEW.{c} IS NOT OLD.{c}" for c in LOCKED_COLUMNS)})
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    f"""CREATE TRIGGER billing_invoice_guard_delete BEFORE DELETE ON billing_invoice
    WHEN OLD.status <> 'draft'
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END;""",
    *[
        f"""CREATE TRIGGER billing_invoice_line_guard_{op.lower()} BEFORE {op} ON billing_invoiceline
    WHEN (SELECT status FROM billing_invoice WHERE id = {row}.invoice_id) <> 'draft'
    BEGIN SELECT RAISE(ABORT, 'invoice line: {MESSAGE}'); END;"""
        for op, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD"))
    ],
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS billing_invoice_guard_update;",
    "DROP TRIGGER IF EXISTS billing_invoice_guard_delete;",
    "DROP TRIGGER IF EXISTS billing_invoice_line_guard_insert;",
    "DROP TRIGGER IF EXISTS billing_invoice_line_guard_update;",
    "DROP TRIGGER IF EXISTS billing_invoice_line_guard_delete;",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_SQL, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_SQL:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PG_REVERSE, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_invoices")]
    operations = [migrations.RunPython(forwards, backwards)]
