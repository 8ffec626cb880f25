from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("billing", "0002_price_tier_no_overlap"),
        ("tenants", "0001_initial"),
        ("disputes", "0001_initial"),
        ("common", "0001_initial"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
