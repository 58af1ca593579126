import uuid

import pytest

from flowbus.catalog import post_complete_work_item
from flowbus.testing import capture_events, isolated_receivers

from review import complete_review


@pytest.fixture(autouse=True)
def _isolated_receivers():
    with isolated_receivers():  # receivers connected in a test go away after it
        yield


def test_completing_sends_one_event():
    with capture_events(post_complete_work_item) as events:
        complete_review(uuid.uuid4())
    assert [e.data["work_item"].task_slug for e in events] == ["review"]
