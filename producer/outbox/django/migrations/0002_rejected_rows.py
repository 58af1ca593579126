"""Outbox schema version 2 (rows the broker rejected for good), by flowbus's own migrations."""

from __future__ import annotations

import importlib

from django.db import migrations, models

# The first migration's function: it applies every flowbus outbox migration not yet applied.
migrate_outbox = importlib.import_module(f"{__package__}.0001_initial").migrate_outbox


class Migration(migrations.Migration):  # type: ignore[misc]  # Django has no type stubs here
    dependencies = [("flowbus_outbox", "0001_initial")]
    operations = [
        migrations.RunPython(migrate_outbox),
        migrations.AddField(
            model_name="outboxevent", name="rejected_at", field=models.BigIntegerField(null=True)
        ),
        migrations.AddField(
            model_name="outboxevent", name="rejected_code", field=models.TextField(null=True)
        ),
        migrations.AddField(
            model_name="outboxevent", name="rejected_reason", field=models.TextField(null=True)
        ),
    ]
