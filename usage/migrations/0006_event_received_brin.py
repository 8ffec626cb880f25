"""A BRIN index on events' ``received_at`` (PostgreSQL): the export finds the first event younger than the settle
horizon by reading the last block ranges only. BRIN because rows arrive in ``received_at`` order: it is a few pages
for millions of rows and costs ingestion almost nothing. SQLite has no BRIN and needs none (the demo's exports are
small)."""

from django.db import migrations

INDEX = "usage_event_received_brin"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON usage_usageevent USING brin (received_at) WITH (autosummarize = on)"
    )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("usage", "0005_refused_duplicates")]
    operations = [migrations.RunPython(create, drop)]
