"""Creates the outbox tables by running flowbus's own outbox migrations (one DDL)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def migrate_outbox(apps: Any, schema_editor: Any) -> None:
    from ...store import migrate_in_transaction
    from .. import outbox_alias

    connection = schema_editor.connection
    if connection.alias != outbox_alias():
        return  # the outbox lives on another database
    connection.ensure_connection()
    migrate_in_transaction(connection.connection, f"Django database {connection.alias!r}")


class Migration(migrations.Migration):  # type: ignore[misc]  # Django has no type stubs here
    initial = True
    dependencies: list[tuple[str, str]] = []
    operations = [
        # Irreversible on purpose: `flowbus outbox migrate` may have created the tables too.
        migrations.RunPython(migrate_outbox),
        migrations.CreateModel(
            name="OutboxEvent",
            fields=[
                ("seq", models.BigAutoField(primary_key=True, serialize=False)),
                ("id", models.TextField(unique=True)),
                ("aggregatetype", models.TextField()),
                ("aggregateid", models.TextField(null=True)),
                ("type", models.TextField()),
                ("payload", models.BinaryField()),
                ("headers", models.TextField()),
                ("schema_fingerprint", models.TextField()),
                ("bucket", models.IntegerField()),
                ("created_at", models.BigIntegerField()),
                ("sent_at", models.BigIntegerField(null=True)),
                ("attempts", models.IntegerField(default=0)),
            ],
            options={"db_table": "flowbus_outbox", "managed": False, "ordering": ("seq",)},
        ),
    ]
