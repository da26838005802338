"""Streams named by the `custom_streams` setting: any Stripe list endpoint the catalog does not
have (a private-preview endpoint, an object Stripe adds next year), made into a table class at
config time, like the generated ones.

An entry with `created: true` becomes a `CreatedWindowStream` (created-time windows from its
bookmark, resumable; events of its `event_types`, if given, for changes and deletions), else a
`FullTableStream` (the whole list each run, as a table version).

Its schema is the generated one when the tap knows the object: the entry's `object` is the
object of a built-in list, or its `path` is a built-in list's path. Otherwise (`schema_inferred`)
discovery, which makes no request, gives a minimal schema — `id`, `object`, `created` (a
date-time), the keys and the tap's own fields — and the run adds every other field of its
records from their values (schema evolution, `tap_stripe.evolution`, on for such a stream
whatever `schema_evolution` says), announcing each in an updated SCHEMA before the first record
that has it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from tap_stripe.records import TAP_FIELD_SCHEMAS
from tap_stripe.spec import StreamKind, StreamSpec
from tap_stripe.streams.base import CreatedWindowStream, FullTableStream, StripeStream, load_schema


class ConfiguredStream(StripeStream):
    """A table of the `custom_streams` setting."""

    schema_source: ClassVar[str | None] = None  # the built-in table whose generated schema it has
    schema_inferred: ClassVar[bool] = False  # no known schema: a minimal one, evolved at sync

    @classmethod
    def base_schema(cls, report_columns: list[str] | None = None) -> dict:
        if cls.schema_source:
            return load_schema(cls.schema_source)
        return minimal_schema(cls.spec)


def minimal_schema(spec: StreamSpec) -> dict:
    """The schema of a list the tap knows nothing of: what every Stripe object has."""
    properties: dict[str, Any] = {"id": {"type": ["string", "null"]}, "object": {"type": ["string", "null"]},
                                  "created": {"type": ["string", "null"], "format": "date-time"}}
    for key in spec.key_properties:
        properties.setdefault(key, {"type": ["string", "null"]})
    properties.update(copy.deepcopy(TAP_FIELD_SCHEMAS))
    return {"type": "object", "properties": properties}


def source_spec(entry: Any, specs: Mapping[str, StreamSpec]) -> StreamSpec | None:
    """The built-in top-level list whose objects an entry's are: by `object`, else by `path`."""
    lists = [s for s in specs.values() if s.kind == StreamKind.LIST and not s.parent]
    if entry.object:
        matches = [s for s in lists if entry.object in s.object_types]
        return next((s for s in matches if s.path == entry.path), matches[0] if matches else None)
    return next((s for s in lists if s.path == entry.path), None)


def stream_classes(entries: Iterable[Any], specs: Mapping[str, StreamSpec]) -> dict[str, type[StripeStream]]:
    """A table class per `custom_streams` entry (`settings.CustomStream`), by name; `specs` are
    the built-in tables (for known schemas)."""
    classes: dict[str, type[StripeStream]] = {}
    for entry in entries:
        source = source_spec(entry, specs)
        base = CreatedWindowStream if entry.created else FullTableStream
        object_types = (entry.object,) if entry.object else (source.object_types if source else ())
        attributes = {
            "__module__": __name__,
            "__doc__": f"Stripe `{entry.path}`, from the `custom_streams` setting.",
            "name": entry.name,
            "path": entry.path,
            "object_types": object_types,
            "key_properties": entry.key,
            "list_params": entry.params,
            "event_types": entry.event_types,
            "deleted_event": next((t for t in entry.event_types if t.endswith(".deleted")), None),
            # Changed objects are read again by id where Stripe's convention has them (a 404
            # falls back to the event's copy).
            "retrieve_path": f"{entry.path}/{{id}}" if entry.event_types else None,
            "expandable": source.expandable if source else (),
            "notes": "custom stream" + (f" (schema of `{source.name}`)" if source else " (schema inferred)"),
            "schema_source": source.name if source else None,
            "schema_inferred": source is None,
        }
        class_name = "".join(part.title() for part in entry.name.split("_")) + "Stream"
        classes[entry.name] = type(class_name, (ConfiguredStream, base), attributes)
    return classes
