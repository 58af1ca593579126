"""Dispatch: a signal's receivers, and how an event reaches them.

Receivers are connected to a signal (directly, or with :func:`flowbus.receivers.on`), for
every sender or for one sender's events; sending calls the matching ones in the order they
were connected, with Open edX's ``send_robust`` semantics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from flowbus.errors import SenderValidationError
from flowbus.metadata import EventMetadata

__all__ = [
    "EventReceiver",
    "Receiver",
    "ReceiverFunction",
    "SignalDispatch",
    "callable_name",
    "sender_name",
]

# Receiver failures are logged under the public module's name, the one users configure.
logger = logging.getLogger("flowbus.signals")

ReceiverFunction = Callable[..., Any]


class Receiver(NamedTuple):
    """A connected receiver, the sender name it listens to (``None``: every sender),
    whether its exceptions always propagate (see :meth:`WorkflowSignal.connect`), and an
    :class:`EventReceiver`'s ``receive``."""

    function: ReceiverFunction
    sender_name: str | None
    required: bool = False
    receive: Callable[..., Any] | None = None


class EventReceiver:
    """A receiver object that takes an event's validated data as one mapping: sending
    calls :meth:`receive` rather than the object with the data spread into keyword
    arguments, which it would gather again (flowbus's forwarders are these). Called as a
    function (by a consumer worker), it is a receiver like any other.
    """

    def receive(
        self,
        sender: object,
        name: str | None,
        signal: Any,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        from_event_bus: bool,
    ) -> Any:
        """Handle one event; ``name`` is ``sender``'s :func:`sender_name`. ``data`` is
        shared with the other receivers: read it, do not change it."""
        raise NotImplementedError

    def __call__(
        self,
        sender: object,
        *,
        signal: Any,
        metadata: EventMetadata,
        from_event_bus: bool = False,
        **data: Any,
    ) -> Any:
        return self.receive(sender, sender_name(sender), signal, metadata, data, from_event_bus)


def sender_name(sender: object) -> str | None:
    """The name a sender is known by, locally and on the other side of the bus.

    A class gives ``"module.QualName"``, a string is its own name, ``None`` stays ``None``,
    and any other object is named after its class.
    """
    if sender is None:
        return None
    if isinstance(sender, str):
        return sender
    cls = sender if isinstance(sender, type) else type(sender)
    return f"{cls.__module__}.{cls.__qualname__}"


class SignalDispatch:
    """The receiver and sending methods of :class:`~flowbus.signals.WorkflowSignal`."""

    # Set by WorkflowSignal, which validates the data and creates the metadata.
    _event_type: str
    validate_data: Callable[..., dict[str, Any]]
    generate_signal_metadata: Callable[..., EventMetadata]

    def _init_dispatch(self) -> None:
        """No receivers yet, sending enabled, receiver exceptions logged."""
        self._receivers: tuple[Receiver, ...] = ()
        self._receivers_lock = threading.Lock()
        # The receivers per sender name, for the receivers tuple they were picked from.
        self._matched: tuple[tuple[Receiver, ...], dict[str | None, tuple[ReceiverFunction, ...]]]
        self._matched = ((), {})
        self._enabled = True
        self._allow_send_event_failure = False

    @property
    def enabled(self) -> bool:
        """Whether sending does anything (see :meth:`disable`)."""
        return self._enabled

    @property
    def send_event_failure_allowed(self) -> bool:
        """Whether receiver exceptions propagate to the sender."""
        return self._allow_send_event_failure

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        """The connected receivers, in calling order."""
        return self._receivers

    # -- switches ----------------------------------------------------------------------------

    def enable(self) -> None:
        """Turn sending back on."""
        self._enabled = True

    def disable(self) -> None:
        """Make ``send_event`` and ``send_event_with_custom_metadata`` do nothing and return []."""
        self._enabled = False

    def allow_send_event_failure(self, allow: bool = True) -> None:
        """Let receiver exceptions propagate to the sender (default: log and return them)."""
        self._allow_send_event_failure = allow

    # -- receivers ---------------------------------------------------------------------------

    def connect(
        self, receiver: ReceiverFunction, sender: object = None, *, required: bool = False
    ) -> ReceiverFunction:
        """Call ``receiver`` for every event of this signal (only ``sender``'s, if given).

        ``sender`` is a class, a string, or an object (matched by its class), compared by
        :func:`sender_name`. A ``required`` receiver's exception always propagates from
        ``send_event``, whatever ``send_robust`` says: for a receiver whose failure must
        fail the sender (the forwarder's outbox and on-commit routes, whose write belongs
        to the caller's transaction). Other receivers keep Open edX's ``send_robust``
        semantics. Connecting the same receiver for the same sender again only updates
        ``required``. Receivers are held strongly: disconnect them when they should stop.
        Returns ``receiver``.
        """
        if not callable(receiver):
            raise TypeError(f"receiver for {self._event_type} must be callable, got {receiver!r}")
        receive = receiver.receive if isinstance(receiver, EventReceiver) else None
        entry = Receiver(receiver, sender_name(sender), required, receive)
        with self._receivers_lock:
            same = [r for r in self._receivers if r[:2] == entry[:2]]
            if not same:
                self._receivers = (*self._receivers, entry)
            elif same[0].required != required:
                self._receivers = tuple(entry if r[:2] == entry[:2] else r for r in self._receivers)
        return receiver

    def disconnect(self, receiver: ReceiverFunction, sender: object = None) -> bool:
        """Disconnect ``receiver`` (connected for ``sender``); ``True`` if it was connected."""
        connected = (receiver, sender_name(sender))
        with self._receivers_lock:
            remaining = tuple(r for r in self._receivers if r[:2] != connected)
            found = len(remaining) != len(self._receivers)
            self._receivers = remaining
        return found

    def _set_receivers(self, receivers: tuple[Receiver, ...]) -> None:
        """Replace every receiver at once (used by :mod:`flowbus.testing`)."""
        with self._receivers_lock:
            self._receivers = receivers

    # -- sending -----------------------------------------------------------------------------

    def send_event(
        self,
        *,
        send_robust: bool = True,
        time: datetime | None = None,
        sender: object = None,
        **kwargs: Any,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """Validate ``kwargs``, create the metadata and call the receivers.

        Returns ``[(receiver, response_or_exception), ...]``. With ``send_robust`` (the
        default) a receiver's exception is logged (event id and type only) and returned
        instead of raised, unless :meth:`allow_send_event_failure` was called; a receiver
        connected with ``required=True`` raises whatever ``send_robust`` says (the receivers
        after it are not called). A disabled signal does nothing and returns ``[]``.
        """
        if not self._enabled:
            return []
        data = self.validate_data(**kwargs)
        metadata = self.generate_signal_metadata(time=time)
        return self._dispatch(sender, metadata, data, from_event_bus=False, robust=send_robust)

    def send_event_with_custom_metadata(
        self,
        metadata: EventMetadata,
        /,
        *,
        send_robust: bool = True,
        sender: object = None,
        **kwargs: Any,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """Re-send an event that already has metadata, e.g. one read from the bus.

        ``metadata`` is used as is (its event type must be this signal's); ``sender`` is
        usually the sender's name as it travelled. Receivers get ``from_event_bus=True``.
        """
        if not self._enabled:
            return []
        self._check_metadata(metadata)
        data = self.validate_data(**kwargs)
        return self._dispatch(sender, metadata, data, from_event_bus=True, robust=send_robust)

    def resend_validated(
        self,
        metadata: EventMetadata,
        data: Mapping[str, Any],
        /,
        *,
        send_robust: bool = True,
        sender: object = None,
    ) -> list[tuple[ReceiverFunction, Any]]:
        """:meth:`send_event_with_custom_metadata` for data :meth:`validate_data` returned.

        For a consumer that validates the data itself first (to tell invalid data from
        failing receivers): the data is not validated a second time.
        """
        if not self._enabled:
            return []
        self._check_metadata(metadata)
        return self._dispatch(sender, metadata, dict(data), from_event_bus=True, robust=send_robust)

    def _check_metadata(self, metadata: EventMetadata) -> None:
        if not isinstance(metadata, EventMetadata):
            raise SenderValidationError(
                self._event_type,
                "metadata",
                f"must be EventMetadata, got {type(metadata).__name__}",
            )
        if metadata.event_type != self._event_type:
            raise SenderValidationError(
                self._event_type,
                "metadata",
                f"event type '{metadata.event_type}' does not match the signal",
            )

    def _dispatch(
        self,
        sender: object,
        metadata: EventMetadata,
        data: dict[str, Any],
        *,
        from_event_bus: bool,
        robust: bool,
    ) -> list[tuple[ReceiverFunction, Any]]:
        propagate = self._allow_send_event_failure or not robust
        results: list[tuple[ReceiverFunction, Any]] = []
        name = sender_name(sender)
        for function, listens_to, required, receive in self._receivers:
            if listens_to is not None and listens_to != name:
                continue
            try:
                if receive is not None:
                    response = receive(sender, name, self, metadata, data, from_event_bus)
                else:
                    response = function(
                        sender,
                        signal=self,
                        metadata=metadata,
                        from_event_bus=from_event_bus,
                        **data,
                    )
            except Exception as exc:
                if propagate or required:
                    raise
                logger.error(
                    "receiver %s failed for event %s (%s)",
                    callable_name(function),
                    metadata.id,
                    metadata.event_type,
                    exc_info=exc,
                )
                results.append((function, exc))
            else:
                results.append((function, response))
        return results

    def receivers_for(self, sender: object = None) -> tuple[ReceiverFunction, ...]:
        """The receivers an event from ``sender`` reaches, in call order (none if disabled).

        For a dispatcher that calls them itself, as the consumer worker does (deadlines,
        retries of only the failed ones, ``async def`` receivers).
        """
        return self._matching(sender_name(sender)) if self._enabled else ()

    def _matching(self, name: str | None) -> tuple[ReceiverFunction, ...]:
        receivers, matched = self._matched
        if receivers is not self._receivers:
            receivers = self._receivers
            matched = {}
            self._matched = (receivers, matched)
        found = matched.get(name)
        if found is None:
            found = tuple(
                receiver.function
                for receiver in receivers
                if receiver.sender_name is None or receiver.sender_name == name
            )
            if len(matched) < _MATCHED_MAX:  # sender names come from the wire
                matched[name] = found
        return found


_MATCHED_MAX = 256


def callable_name(function: ReceiverFunction) -> str:
    """``module.QualName`` of a receiver (a function, method or callable object)."""
    module = getattr(function, "__module__", None) or "?"
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"
