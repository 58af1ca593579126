"""Producing one message and waiting for its delivery report, with a deadline.

The synchronous sends of flowbus (the producer's synchronous mode, a dead letter
re-published to its original topic) wait the same way: :func:`produce_and_wait` returns
the delivered message, or raises :class:`~flowbus.errors.DeliveryTimeoutError` (no report
in time) or :class:`~flowbus.errors.DeliveryFailedError` (the broker refused it); the
caller says which event or record that was.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, Message, Producer

from flowbus.errors import DeliveryFailedError, DeliveryTimeoutError

__all__ = ["OnDelivery", "produce_and_wait"]

#: librdkafka's delivery callback: ``(error or None, message)``.
OnDelivery = Callable[[KafkaError | None, Message], None]


def produce_and_wait(
    producer: Producer,
    produce: Callable[[OnDelivery], object],
    *,
    timeout: float | None,
    on_delivery: OnDelivery | None = None,
) -> Message:
    """Call ``produce(callback)``, which hands one message with ``callback`` as its delivery
    callback to ``producer``, then serve ``producer``'s delivery reports until that
    message's arrives or ``timeout`` seconds pass (``None``: until it arrives, which
    librdkafka guarantees within ``message.timeout.ms``).

    ``on_delivery``: also called with the report (the caller's own bookkeeping).
    """
    outcome: list[tuple[KafkaError | None, Message]] = []

    def reported(error: KafkaError | None, message: Message) -> None:
        if on_delivery is not None:
            on_delivery(error, message)
        outcome.append((error, message))

    produce(reported)
    if timeout is None:
        while not outcome:
            producer.flush(1.0)
    else:
        deadline = time.monotonic() + timeout
        while not outcome and (left := deadline - time.monotonic()) > 0:
            producer.flush(min(1.0, left))
        if not outcome:
            raise DeliveryTimeoutError(timeout)
    error, message = outcome[0]
    if error is not None:
        raise DeliveryFailedError(error)
    return message
