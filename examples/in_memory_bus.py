import uuid

from flowbus import on
from flowbus.catalog import post_complete_work_item
from flowbus.catalog.models import UserInfo
from flowbus.consumer.testing import InMemoryBus
from flowbus.testing import isolated_receivers

from review import review_work_item

with isolated_receivers(), InMemoryBus(concurrency=4) as bus:
    completed = []

    @on(post_complete_work_item)
    def notify_owner(sender, work_item, metadata, **kwargs):
        completed.append(work_item.task_slug)

    bus.publish(
        post_complete_work_item,
        topic="caluma-events",
        work_item=review_work_item(uuid.uuid4()),
        user=UserInfo(username="alice"),
        context={},
    )
    bus.publish_raw("caluma-events", b"not an event")  # no CloudEvents headers
    bus.run()
    assert completed == ["review"]
    assert [letter.reason for letter in bus.dead_letters] == ["malformed-headers"]
