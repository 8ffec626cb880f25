from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_api_keys"), ("django_celery_beat", "0019_alter_periodictasks_options")]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
