from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_staff_groups_usage"),
        ("billing", "0004_finalized_invoice_guard"),
        ("common", "0004_clock"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
