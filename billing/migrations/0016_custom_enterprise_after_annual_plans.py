from django.db import migrations


def custom_enterprise_last(apps, schema_editor):
    """The annual messaging plans list after the monthly ones (display order 4–6); Custom Enterprise stays last."""
    Plan = apps.get_model("billing", "Plan")
    Plan.objects.filter(code="messaging-custom-enterprise", display_order=4).update(display_order=7)


class Migration(migrations.Migration):
    dependencies = [("billing", "0015_subscriptions_contracts")]
    operations = [migrations.RunPython(custom_enterprise_last, migrations.RunPython.noop)]
