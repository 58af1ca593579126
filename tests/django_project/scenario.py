"""Run the permits project through requests and print what happened, as JSON.

Usage: python scenario.py fail ok ...   (one POST /permits/ per argument; ``fail`` rolls back)

After each request the producer is flushed, so an event produced by a rolled-back request
would be on the topic before the next request starts. With the outbox sink nothing is
produced here: the events wait in the outbox table for ``manage.py flowbus_outbox_relay``.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "permits_site.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from permits import flowbus_setup  # noqa: E402
from permits.models import Permit  # noqa: E402
from permits.signals import PERMIT_SUBMITTED  # noqa: E402

from flowbus.producer.outbox.django.models import OutboxEvent  # noqa: E402
from flowbus.testing import capture_events  # noqa: E402

call_command("migrate", verbosity=0)
client = Client(raise_request_exception=False)
assert flowbus_setup.producer is not None
requests = []
for index, outcome in enumerate(sys.argv[1:]):
    with capture_events(PERMIT_SUBMITTED) as sent:
        response = client.post(
            "/permits/", {"name": f"permit {index}", "fail": "1" if outcome == "fail" else "0"}
        )
    undelivered = flowbus_setup.producer.flush(60)
    requests.append(
        {
            "outcome": outcome,
            "status": response.status_code,
            "event_ids": [str(event.metadata.id) for event in sent],
            "undelivered": undelivered,
        }
    )
flowbus_setup.producer.close()
print(
    json.dumps(
        {
            "requests": requests,
            "permits": list(Permit.objects.order_by("pk").values_list("name", flat=True)),
            "stats": vars(flowbus_setup.producer.stats),
            # Rows the outbox sink wrote and no relay published yet (read through the ORM).
            "outbox_pending": OutboxEvent.objects.filter(sent_at__isnull=True).count(),
        }
    )
)
