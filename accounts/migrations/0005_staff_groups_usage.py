from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_staff_groups_api_keys"),
        ("usage", "0001_initial"),
        ("common", "0003_idempotency"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
