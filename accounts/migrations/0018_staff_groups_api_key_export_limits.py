from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """API keys: the history of export keys' accounts gets its permissions in both groups."""

    dependencies = [("accounts", "0017_api_keys_webhooks_scope_export_limits")]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
