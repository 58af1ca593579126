"""The producer's checks of ``flowbus doctor`` (loaded by name: the core imports no side).

``subjects``: the subjects of the forwarding routes are registered (without a registry,
their schemas are in the ``schemas/`` catalog).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowbus.doctor import STACK_HINT, Check, Status
from flowbus.errors import FlowbusError
from flowbus.settings import FlowbusSettings

from .forwarding import parse_forwarding_config

if TYPE_CHECKING:
    from flowbus.avro.registry import SchemaRegistry

__all__ = ["check_subjects"]


def check_subjects(
    settings: FlowbusSettings, registry: SchemaRegistry | None, registry_ok: bool
) -> Check:
    import flowbus.catalog  # noqa: F401  (routes may name the catalog's signals)
    from flowbus.avro.registry import subject_name
    from flowbus.avro.schema_dir import SchemaDirectory
    from flowbus.avro.serializer import codec_for
    from flowbus.errors import SchemaRegistryError
    from flowbus.signals import WorkflowSignal
    from flowbus.wire import get_profile

    try:
        config = parse_forwarding_config(settings.producer_config)
    except FlowbusError as exc:
        return Check("subjects", Status.FAIL, str(exc), "fix FLOWBUS_PRODUCER_CONFIG")
    routes = [(t, r) for t, rs in config.items() for r in rs if r.enabled]
    if not routes:
        return Check("subjects", Status.OK, "no routes in FLOWBUS_PRODUCER_CONFIG: none needed")
    if registry is not None and not registry_ok:
        return Check("subjects", Status.FAIL, "not checked: the registry does not answer")
    missing: list[str] = []
    for event_type, route in routes:
        signal = WorkflowSignal.get_signal_by_type(event_type)
        schema = codec_for(signal, get_profile(route.wire or signal.wire)).schema
        topic = f"{settings.topic_prefix}{route.topic}"
        if registry is None:
            schema_dir = SchemaDirectory(settings.schemas_dir) if settings.schemas_dir else None
            if (schema_dir or SchemaDirectory.default()).by_fingerprint(schema.fingerprint) is None:
                missing.append(f"{event_type} (for {topic})")
            continue
        subject = subject_name(topic, schema.parsed["name"])
        try:
            if registry.lookup(subject, schema) is None:
                missing.append(subject)
        except SchemaRegistryError as exc:
            return Check("subjects", Status.FAIL, f"{subject}: {exc.message}", STACK_HINT)
    where = "registered" if registry is not None else "in the schemas/ catalog"
    if not missing:
        return Check("subjects", Status.OK, f"{len(routes)} route(s), every schema {where}")
    shown = f"{len(missing)} of {len(routes)} route(s) not {where}: {', '.join(missing)}"
    if registry is None:
        return Check(
            "subjects",
            Status.WARN,
            shown,
            "run `flowbus schemas generate` (consumers without this code cannot decode them)",
        )
    if settings.schema_auto_register:
        return Check(
            "subjects",
            Status.WARN,
            shown,
            "registered on first use (FLOWBUS_SCHEMA_AUTO_REGISTER); in production run "
            "`flowbus schemas register`",
        )
    return Check("subjects", Status.FAIL, shown, "run `flowbus schemas register`")
