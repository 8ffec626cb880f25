from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Finance admin gain the permissions to void issued invoices and to write invoices off; billing staff
    do not."""

    dependencies = [
        ("accounts", "0008_staff_groups_sign_in_attempts"),
        ("billing", "0009_invoice_void_write_off_permissions"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
