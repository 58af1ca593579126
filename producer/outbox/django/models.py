"""The outbox table as a read-only, unmanaged Django model (flowbus owns its DDL)."""

from __future__ import annotations

from django.db import models


class OutboxEvent(models.Model):  # type: ignore[misc]  # Django has no type stubs here
    """One event in ``flowbus_outbox`` (see README "Transactional outbox" for the columns).

    For reading (admin, backlog queries); the outbox sink writes rows and the relay marks
    and deletes them, so do not save or delete through the ORM.
    """

    seq = models.BigAutoField(primary_key=True)
    id = models.TextField(unique=True)
    aggregatetype = models.TextField(help_text="the topic, prefix included")
    aggregateid = models.TextField(null=True, help_text="the Kafka key")
    type = models.TextField(help_text="the event type")
    payload = models.BinaryField(help_text="schemaless Avro body")
    headers = models.TextField(help_text="CloudEvents headers, JSON [[name, value], ...]")
    schema_fingerprint = models.TextField()
    bucket = models.IntegerField()
    created_at = models.BigIntegerField(help_text="unix ms, database clock")
    sent_at = models.BigIntegerField(null=True, help_text="unix ms; NULL while pending")
    attempts = models.IntegerField(default=0)
    rejected_at = models.BigIntegerField(
        null=True, help_text="unix ms when the broker rejected the row for good"
    )
    rejected_code = models.TextField(null=True, help_text="the broker's error code name")
    rejected_reason = models.TextField(null=True, help_text="the broker's error message")

    class Meta:
        managed = False
        db_table = "flowbus_outbox"
        ordering = ("seq",)
