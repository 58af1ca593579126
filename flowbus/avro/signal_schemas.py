"""The Avro side of each signal: its data analysed once per wire profile, and its schemas.

The signal knows its data, not Avro; this module derives the Avro view from the signal, as
openedx-events' ``schema_from_signal`` does. :func:`signal_analysis` analyses a signal's
data in a profile once and keeps the result as long as the signal lives; the codecs
(:func:`flowbus.avro.serializer.codec_for`), :func:`schema_from_signal` and the definition
check share it.

:func:`check_definition` is the definition check the composition root (``flowbus``)
registers (see :mod:`flowbus.signal_checks`): a signal whose data its wire profile cannot
carry is refused when it is defined.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import TYPE_CHECKING, Any

from flowbus.avro.schema import EventType, analyze_data, to_avro
from flowbus.errors import ConfigurationError, SignalDefinitionError
from flowbus.wire import FLOWBUS, WireProfile, get_profile

if TYPE_CHECKING:
    from flowbus.signals import WorkflowSignal

__all__ = ["check_definition", "schema_from_signal", "signal_analysis"]

#: Per signal (weakly: a failed definition leaves nothing behind), per profile name.
_analyses: weakref.WeakKeyDictionary[WorkflowSignal, dict[str, EventType]] = (
    weakref.WeakKeyDictionary()
)
_analyses_lock = threading.Lock()


def signal_analysis(signal: WorkflowSignal, profile: WireProfile | None = None) -> EventType:
    """The type tree of ``signal``'s data in ``profile`` (default: ``flowbus``), analysed on
    first use. Raises :class:`~flowbus.errors.UnsupportedDataTypeError` when the profile
    cannot carry the data."""
    profile = profile or FLOWBUS
    with _analyses_lock:
        per_profile = _analyses.setdefault(signal, {})
        event = per_profile.get(profile.name)
        if event is None:
            event = analyze_data(
                signal.event_type, signal.data, doc=signal.doc, naming=profile.naming
            )
            per_profile[profile.name] = event
    return event


def schema_from_signal(
    signal: WorkflowSignal, profile: WireProfile | None = None
) -> dict[str, Any]:
    """The Avro record schema of ``signal``'s data in ``profile`` (default: ``flowbus``, the
    one the ``schemas/`` directory keeps); a copy, changing it changes nothing."""
    return copy.deepcopy(to_avro(signal_analysis(signal, profile)))


def check_definition(signal: WorkflowSignal) -> None:
    """Refuse a signal whose data the ``flowbus`` profile, or its own wire profile, cannot
    carry (:class:`~flowbus.errors.UnsupportedDataTypeError` naming the field), or whose
    wire profile does not exist."""
    try:
        profile = get_profile(signal.wire)
    except ConfigurationError as exc:
        raise SignalDefinitionError(f"{signal.event_type}: {exc}") from None
    signal_analysis(signal)
    if profile is not FLOWBUS:
        signal_analysis(signal, profile)
