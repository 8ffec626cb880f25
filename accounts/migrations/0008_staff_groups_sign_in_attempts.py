from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Finance admins see failed sign-in attempts and may delete them (django-axes)."""

    dependencies = [("accounts", "0007_staff_groups_documents"), ("axes", "0010_accessattemptexpiration")]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
