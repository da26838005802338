"""The record path of the tap's own sync, as the SDK's: for each stream, the sensitive-data
policy, deselected fields pruned, then stream maps (and the SDK's flattening), then the writer
(`Emitter`); and the SCHEMA messages that go with it (`schema_messages`), rebuilt when schema
evolution adds fields (`EvolvingOutput`). A golden-output test holds it to the SDK's own."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from singer_sdk import Stream
from singer_sdk.mapper import RemoveRecordTransform, SameRecordTransform
from singer_sdk.singerlib import SchemaMessage

from tap_stripe.output.writer import record_line
from tap_stripe.sensitive.protect import Protector


def message_dict(message: Any) -> dict:
    """`message.to_dict()` (the SDK's: the message's fields, top-level nulls left out) without
    the deep copy `dataclasses.asdict` makes of every value: a SCHEMA's schema, which is only
    serialised, is not copied (~7 ms for a large stream's)."""
    return {f.name: value for f in dataclasses.fields(message) if (value := getattr(message, f.name)) is not None}


def protected_schema(stream: Stream, protector: Protector, schema: dict, maps: list | None = None) -> dict:
    """The SCHEMA's schema under the sensitive-data policies. When the SDK flattens, the
    policies apply to the nested schema and the result is flattened (they name nested
    paths, `billing_details.email`, which a flattened schema no longer has)."""
    maps = stream.stream_maps if maps is None else maps
    if len(maps) == 1 and type(maps[0]) is SameRecordTransform and maps[0].flattening_enabled:
        return maps[0].flatten_schema(protector.schema(stream.name, maps[0].raw_schema))
    return protector.schema(stream.name, schema)


class EvolvingOutput:
    """Schema evolution's side in the tap (`tap_stripe.output.evolution`): a stream's output rebuilt
    for its schema with added fields — the SDK's stream maps (and flattener) registered anew,
    the emitter, its SCHEMA messages — and put in place of the old for the records after."""

    def __init__(self, streams: Mapping[str, Stream], mapper: Any, protector: Protector | None, writer: Any,
                 emitters: dict[str, Emitter], render: dict[str, Callable[[dict, str, int | None], bytes]]):
        self.streams = streams
        self.mapper = mapper  # the SDK's PluginMapper, shared by the streams
        self.protector = protector
        self.writer = writer
        self.emitters = emitters
        self.render = render
        self.lock = threading.Lock()  # the SDK's mapper is shared by the streams

    def rebuild(self, name: str, properties: dict[str, dict]) -> list[dict]:
        """The SCHEMA messages of stream `name` with `properties` added (any thread; the
        evolution's lock of the stream is held, so rebuilds of one stream come in order)."""
        stream = self.streams[name]
        primary = stream.stream_maps[0]  # registered from the catalog: the schema before any evolution
        schema = {**primary.raw_schema, "properties": {**primary.raw_schema.get("properties", {}), **properties}}
        with self.lock:
            self.mapper.register_raw_stream_schema(name, schema, primary.raw_key_properties)
            maps = list(self.mapper.stream_maps[name])
        emitter = Emitter(stream, self.writer, self.protector, maps=maps)
        messages = schema_messages(stream, maps, self.protector)
        self.emitters[name] = emitter
        if emitter.in_worker:
            self.render[name] = emitter.render
        return messages


def schema_messages(stream: Stream, maps: list, protector: Protector | None) -> list[dict]:
    """The SCHEMA messages of `stream` through `maps`, as `Stream._generate_schema_messages`
    writes them (one per map that keeps records), under the sensitive-data policies."""
    bookmark_keys = [stream.replication_key] if stream.replication_key else None
    messages = []
    for stream_map in maps:
        if isinstance(stream_map, RemoveRecordTransform):
            continue
        message = SchemaMessage(stream_map.stream_alias, stream_map.transformed_schema,
                                stream_map.transformed_key_properties, bookmark_keys).to_dict()
        if protector:
            message["schema"] = protected_schema(stream, protector, message["schema"], maps)
        messages.append(message)
    return messages


class Emitter:
    """The SDK's record path for one stream: deselected fields, then stream maps (and the
    SDK's flattening), then write."""

    def __init__(self, stream: Stream, writer: Any, protector: Protector | None = None,
                 apply_maps: bool = True, maps: list | None = None):
        self.stream = stream
        self.writer = writer
        self.protect = protector.record if protector and protector.policies(stream.name) else None
        self.mask = stream.mask
        self.prune = any(not selected for crumb, selected in self.mask.items() if crumb)
        maps = stream.stream_maps if maps is None else maps  # another schema's (schema evolution)
        # Without `apply_maps` the records go on as they are (to the SDK's own stream sync,
        # which applies the maps and flattening itself).
        same = not apply_maps or (len(maps) == 1 and type(maps[0]) is SameRecordTransform)
        # `flattening_enabled`: the SDK flattens in the map's transform (SameRecordTransform's
        # too), with the flattened schema its SCHEMA message carries (see `_flattener`).
        flattening = apply_maps and same and maps[0].flattening_enabled
        self.flatten = _flattener(maps[0]) if flattening else None
        self.identity = same and self.flatten is None
        self.maps = [(m, frozenset(m.transformed_schema["properties"]) if m.flattening_enabled else None)
                     for m in maps if not isinstance(m, RemoveRecordTransform)]
        self.name = stream.name
        # Without stream maps (whose evaluators are not thread-safe) a record can be finished
        # (and flattened) and serialised in the worker that fetched it.
        self.in_worker = same and hasattr(writer, "write_line")
        self.render: Callable[[dict, str, int | None], bytes] = self._render_plain
        if self.flatten is not None:
            self.render = self._render_flat
        elif not self.protect and not self.prune:  # nothing to finish: straight to the line
            name = self.name

            def render(record: dict, extracted: str, version: int | None) -> bytes:
                return record_line(name, record, extracted, version)

            self.render = render

    def _finish(self, record: dict) -> dict:
        """Sensitive-data policy, then the SDK's pruning of deselected fields."""
        if self.protect:
            self.protect(self.name, record)
        if self.prune:
            _pruned(record, self.mask, (), record)
        return record

    def _render_plain(self, record: dict, extracted: str, version: int | None) -> bytes:
        """The RECORD line for `record` (only when `in_worker`): `render` unless flattened."""
        return record_line(self.name, self._finish(record), extracted, version)

    def _render_flat(self, record: dict, extracted: str, version: int | None) -> bytes:
        assert self.flatten is not None
        return record_line(self.name, self.flatten(self._finish(record)), extracted, version)

    def __call__(self, record: dict, extracted: str, version: int | None) -> None:
        self._finish(record)
        if self.identity:
            self.writer.record(self.name, record, extracted, version)
            return
        if self.flatten is not None:
            self.writer.record(self.name, self.flatten(record), extracted, version)
            return
        for stream_map, flat_keys in self.maps:
            mapped = stream_map.transform(record)
            if mapped is not None:
                if flat_keys is not None:
                    mapped = _schema_keys(mapped, flat_keys)
                self.writer.record(stream_map.stream_alias, mapped, extracted, version)


def _flattener(stream_map: Any) -> Any:
    """The SDK's flattening of one record (`StreamMap.flatten_record`, a pure function of the
    record, so workers may call it), keeping the flattened SCHEMA's keys only. An SDK tap's
    conformance drops fields its schema lacks before flattening; without that, such a nested
    field (`lines.total_count`) would become a key no column matches. And the SDK's flattener
    writes `key: null` for a null object whose columns are `key__*`, a key its own SCHEMA does
    not have (those columns are null either way)."""
    flatten = stream_map.flatten_record
    keys = frozenset(stream_map.transformed_schema["properties"])

    def flat(record: dict) -> dict:
        return _schema_keys(flatten(record), keys)

    return flat


def _schema_keys(record: dict, keys: frozenset) -> dict:
    if record.keys() <= keys:
        return record
    return {k: v for k, v in record.items() if k in keys}


def _pruned(value: dict, mask: Any, breadcrumb: tuple, out: dict | None) -> dict | None:
    """The SDK's pruning of deselected properties (`pop_deselected_record_properties`),
    copy-on-write below the record: nested dicts a child record shares with its parent (its
    embedded list) are copied before a property is removed, never changed in place. Returns
    the changed copy of `value` (or `out`, `value` itself at the top level), None if unchanged."""
    for name, val in list(value.items()):
        crumb = (*breadcrumb, "properties", name)
        if not mask[crumb]:
            if out is None:
                out = dict(value)
            del out[name]
        elif type(val) is dict:
            new = _pruned(val, mask, crumb, None)
            if new is not None:
                if out is None:
                    out = dict(value)
                out[name] = new
    return out
