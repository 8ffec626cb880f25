from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """The payments ledger: billing staff see it and work dunning; Finance admin records, refunds and reverses."""

    dependencies = [("accounts", "0011_payments_ledger"), ("billing", "0012_payments_ledger")]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
