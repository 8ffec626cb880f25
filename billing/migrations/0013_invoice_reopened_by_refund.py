"""The finalized-invoice guard lets a paid invoice open again ('paid' → 'finalized') when the money that paid it
is refunded or a wrongly recorded payment is reversed. Its identity, money and lines stay locked as before."""

from importlib import import_module

from django.db import migrations

guard = import_module("billing.migrations.0004_finalized_invoice_guard")

OLD_RULE = "NOT (OLD.status = 'finalized' AND NEW.status IN ('paid', 'void', 'uncollectible'))"
NEW_RULE = (
    "NOT ((OLD.status = 'finalized' AND NEW.status IN ('paid', 'void', 'uncollectible'))"
    " OR (OLD.status = 'paid' AND NEW.status = 'finalized'))"
)


def _swap(old: str, new: str):
    def run(apps, schema_editor):
        vendor = schema_editor.connection.vendor
        if vendor == "postgresql":
            # Only the function body changes; CREATE OR REPLACE keeps the trigger that calls it.
            function = guard.PG_SQL.split("CREATE TRIGGER billing_invoice_guard ")[0]
            assert old in function
            schema_editor.execute(function.replace(old, new), params=None)
        elif vendor == "sqlite":
            update = guard.SQLITE_SQL[0]
            assert old in update
            schema_editor.execute("DROP TRIGGER IF EXISTS billing_invoice_guard_update;")
            schema_editor.execute(update.replace(old, new))

    return run


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_payments_ledger")]
    operations = [migrations.RunPython(_swap(OLD_RULE, NEW_RULE), _swap(NEW_RULE, OLD_RULE))]
