from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Disputes: billing staff work cases and credit up to the approval threshold; Finance admin approves larger
    credits, issues credit notes outside a case and voids them."""

    dependencies = [
        ("accounts", "0013_disputes_workbench"),
        ("billing", "0014_disputes_workbench"),
        ("disputes", "0004_workbench_state"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
