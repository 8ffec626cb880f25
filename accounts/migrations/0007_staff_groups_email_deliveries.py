from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Staff see documents and e-mail deliveries (permissions of the models added in billing 0005)."""

    dependencies = [
        ("accounts", "0006_staff_groups_invoices"),
        ("billing", "0005_documents_and_emails"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
