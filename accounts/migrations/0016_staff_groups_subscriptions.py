from django.db import migrations

from accounts.permissions import staff_groups_sync


class Migration(migrations.Migration):
    """Subscriptions: billing staff request, approve and decline plan changes; contracts stay Finance admin's."""

    dependencies = [
        ("accounts", "0015_subscriptions_contracts"),
        ("billing", "0015_subscriptions_contracts"),
    ]
    operations = [migrations.RunPython(staff_groups_sync, migrations.RunPython.noop)]
