from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Billing staff no longer see the internal tables: number series, outbox events, idempotency records and
    the test clock."""

    dependencies = [("accounts", "0009_staff_groups_invoice_void_write_off"), ("common", "0004_clock")]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
