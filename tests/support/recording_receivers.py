"""Receivers for worker subprocesses in tests: each handled event becomes a JSON line.

Configured by environment variables: ``FLOWBUS_TEST_EVENTS_FILE`` (where lines go) and
``FLOWBUS_TEST_RECEIVER_DELAY`` (seconds each call takes, default 0).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from flowbus import on
from flowbus.catalog import caluma

_OUT = os.environ.get("FLOWBUS_TEST_EVENTS_FILE", os.devnull)
_DELAY = float(os.environ.get("FLOWBUS_TEST_RECEIVER_DELAY", "0"))


@on([caluma.WORK_ITEM_POST_COMPLETE, caluma.WORK_ITEM_POST_CREATE, caluma.CASE_POST_COMPLETE])
def record(sender: Any, signal: Any, metadata: Any, **kwargs: Any) -> None:
    if _DELAY:
        time.sleep(_DELAY)
    line = {"id": str(metadata.id), "type": metadata.event_type, "sender": sender}
    with open(_OUT, "a") as out:
        out.write(json.dumps(line) + "\n")
        out.flush()
