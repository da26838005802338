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
records from their values (schema evolution, `tap_stripe.output.evolution`, on for such a stream
whatever `schema_evolution` says), announcing each in an updated SCHEMA before the first record
that has it.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from tap_stripe.errors import ConfigError
from tap_stripe.output.records import TAP_FIELD_SCHEMAS
from tap_stripe.spec import StreamKind, StreamSpec
from tap_stripe.streams.base import CreatedWindowStream, FullTableStream, StripeStream, load_schema


@dataclass(frozen=True)
class CustomStream:
    """One entry of the `custom_streams` setting: a list endpoint read as a stream."""

    name: str
    path: str
    key: tuple[str, ...] = ("id",)
    created: bool = False  # the list takes `created[gte]`/`created[lt]`: created-time windows
    object: str | None = None  # the Stripe object type of its items (`billing.widget`)
    event_types: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # fixed list parameters


CUSTOM_STREAM_KEYS = ("name", "path", "key", "created", "object", "event_types", "params")


def custom_streams(config: dict, builtin: Iterable[str]) -> tuple[CustomStream, ...]:
    """The `custom_streams` setting, checked (ConfigError names the entry and what is wrong)."""
    builtin = set(builtin)
    out: list[CustomStream] = []
    for i, entry in enumerate(_entries(config)):
        name = _entry_name(entry, f"setting 'custom_streams[{i}]'")
        where = f"setting 'custom_streams' entry '{name}'"
        if name in builtin:
            raise ConfigError(f"{where}: '{name}' is a built-in stream; give the custom stream another name")
        if any(c.name == name for c in out):
            raise ConfigError(f"{where}: the name is used twice")
        out.append(_entry_stream(entry, name, where))
    return tuple(out)


def _entries(config: dict) -> list:
    """The setting's entries: a list, or JSON text of one (from the environment)."""
    raw = config.get("custom_streams")
    if raw in (None, "", []):
        return []
    if isinstance(raw, str):  # from the environment: JSON
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigError("setting 'custom_streams' must be a JSON list of objects") from None
    if not isinstance(raw, list):
        raise ConfigError("setting 'custom_streams' must be a list of objects like "
                          '{"name": "billing_widgets", "path": "/v1/billing/widgets"}')
    return raw


def _entry_name(entry: Any, where: str) -> str:
    """An entry's name, once the entry is an object of known keys and the name a stream name."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object with 'name' and 'path'")
    unknown = sorted(set(entry) - set(CUSTOM_STREAM_KEYS))
    if unknown:
        raise ConfigError(f"{where} has an unknown key '{unknown[0]}' (expected {', '.join(CUSTOM_STREAM_KEYS)})")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name):
        raise ConfigError(f"{where}: 'name' must be a snake_case stream name (a-z, 0-9, _)")
    return name


def _entry_stream(entry: dict, name: str, where: str) -> CustomStream:
    """The stream an entry describes: its path, key, created-time windows, events and parameters."""
    path = entry.get("path")
    if not isinstance(path, str) or not re.fullmatch(r"/v1(/[a-z0-9_]+)+", path):
        raise ConfigError(f"{where}: 'path' must be a list path starting with /v1/, without placeholders "
                          "or query (e.g. /v1/billing/widgets)")
    key = entry.get("key", "id")
    keys = (key,) if isinstance(key, str) else tuple(key) if isinstance(key, list) else ()
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"{where}: 'key' must be a field name or a list of field names")
    created = entry.get("created", False)
    if not isinstance(created, bool):
        raise ConfigError(f"{where}: 'created' must be true (the list takes created[gte]/created[lt]) or false")
    object_type = entry.get("object")
    if object_type is not None and (not isinstance(object_type, str) or
                                    not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*", object_type)):
        raise ConfigError(f"{where}: 'object' must be a Stripe object type (e.g. billing.widget)")
    event_types = entry.get("event_types") or []
    if not isinstance(event_types, list) or not all(
            isinstance(t, str) and re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", t) for t in event_types):
        raise ConfigError(f"{where}: 'event_types' must be a list of event types (e.g. billing.widget.updated)")
    if event_types and not created:
        raise ConfigError(f"{where}: 'event_types' needs 'created': true (a full-table stream is re-read "
                          "whole each run)")
    if event_types and not object_type:
        raise ConfigError(f"{where}: 'event_types' needs 'object', the type of the events' objects")
    if len(event_types) > 20:
        raise ConfigError(f"{where}: 'event_types' takes at most 20 types (Stripe's limit per request)")
    params = entry.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(k, str) and isinstance(v, (str, int)) and
                                               not isinstance(v, bool) for k, v in params.items()):
        raise ConfigError(f"{where}: 'params' must be an object of list parameters to strings")
    return CustomStream(name=name, path=path, key=keys, created=created, object=object_type,
                        event_types=tuple(event_types), params=tuple((k, str(v)) for k, v in params.items()))


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
