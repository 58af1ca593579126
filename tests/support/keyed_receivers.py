"""Receivers for worker subprocesses in fault tests: each call becomes JSON lines.

``FLOWBUS_TEST_EVENTS_FILE``: where lines go (``{"phase": "start"|"end", "id", "key",
"slug", "pid", "t"}``); ``FLOWBUS_TEST_RECEIVER_DELAY``: seconds each call takes;
``FLOWBUS_TEST_HANG_SLUG``: a work item task slug whose events hang (10 minutes);
``FLOWBUS_TEST_ASYNC=1``: the receiver is ``async def``.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from typing import Any

from flowbus.catalog import caluma

_OUT = os.environ.get("FLOWBUS_TEST_EVENTS_FILE", os.devnull)
_DELAY = float(os.environ.get("FLOWBUS_TEST_RECEIVER_DELAY", "0"))
_HANG = os.environ.get("FLOWBUS_TEST_HANG_SLUG")
_LOCK = threading.Lock()


def _write(phase: str, metadata: Any, work_item: Any) -> None:
    line = {
        "phase": phase, "id": str(metadata.id), "key": str(work_item.case_id),
        "slug": work_item.task_slug, "pid": os.getpid(), "t": time.time(),
    }  # fmt: skip
    with _LOCK, open(_OUT, "a") as out:
        out.write(json.dumps(line) + "\n")


def record(sender: Any, signal: Any, metadata: Any, work_item: Any, **kwargs: Any) -> None:
    _write("start", metadata, work_item)
    time.sleep(600 if work_item.task_slug == _HANG else _DELAY)
    _write("end", metadata, work_item)


async def record_async(
    sender: Any, signal: Any, metadata: Any, work_item: Any, **kwargs: Any
) -> None:
    _write("start", metadata, work_item)
    await asyncio.sleep(600 if work_item.task_slug == _HANG else _DELAY)
    _write("end", metadata, work_item)


caluma.WORK_ITEM_POST_COMPLETE.connect(
    record_async if os.environ.get("FLOWBUS_TEST_ASYNC") == "1" else record
)
