"""Tiers of one charge must not overlap. PostgreSQL enforces it with an exclusion constraint over
ranges (built-in GiST range operators, no extension needed); SQLite, used only for the demo, relies on
the service-layer check in ``billing.services.plan_charge_set_tiers``."""

from django.db import migrations

CONSTRAINT = "price_tier_no_overlap"


def add_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"ALTER TABLE billing_pricetier ADD CONSTRAINT {CONSTRAINT} EXCLUDE USING gist ("
        "int8range(charge_id, charge_id, '[]') WITH &&, "
        "numrange(lower_bound, upper_bound, '[)') WITH &&)"
    )


def drop_exclusion(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"ALTER TABLE billing_pricetier DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(add_exclusion, drop_exclusion)]
