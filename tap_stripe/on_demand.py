"""The tap's streams, their record shapers and their stream maps, each built when first used.

The SDK builds every stream up front and registers each with its mapper, and each stream's
records go through a `RecordShaper` compiled from its schema: over a hundred of each, where a
scheduled run usually syncs one or a few. Here each is made when something first asks
for it (`StreamsOnDemand`, `ShapersOnDemand`, `StreamMapsOnDemand`), so a run does that work
for the streams it syncs (and their parents and children), and discovery, which reads them
all, for all. `is_selected` says whether a stream is selected without building it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from singer_sdk.singerlib import Catalog

from tap_stripe.catalog import LazyCatalogEntry
from tap_stripe.output.records import RecordShaper


def is_selected(streams: Mapping[str, Any], spec: Any, input_catalog: Callable[[], Catalog | None]) -> bool:
    """`streams[spec.name].selected`, without building the stream when it is not built yet:
    from the input catalog's entry (not in the catalog: not selected), or, without a
    catalog, the stream's `selected_by_default`."""
    name = spec.name
    if isinstance(streams, StreamsOnDemand) and not streams.built(name):
        catalog = input_catalog()
        if catalog is None:
            return bool(spec.selected_by_default)
        entry = catalog.get(name)
        if entry is None:
            return False
        if isinstance(entry, LazyCatalogEntry):
            return bool(entry.selected)
    return bool(streams[name].selected)


class StreamsOnDemand(Mapping):
    """The tap's streams by name (sorted, as the SDK lists them), each built, and given the
    input catalog (`apply_catalog`), when first read: a run builds the streams it syncs.
    Reading every value (discovery, the SDK's test helpers) builds them all, as the SDK does."""

    def __init__(self, tap: Any):
        self.tap = tap
        self.classes = tap.stream_classes  # the built-in tables and the `custom_streams` setting's
        self.names = sorted(self.classes)
        self.built_streams: dict[str, Any] = {}
        self.lock = threading.RLock()

    def built(self, name: str) -> bool:
        return name in self.built_streams

    def __getitem__(self, name: str) -> Any:
        stream = self.built_streams.get(name)
        if stream is None:
            cls = self.classes[name]  # KeyError for an unknown stream, as the SDK's dict
            with self.lock:
                stream = self.built_streams.get(name)
                if stream is None:
                    stream = cls(self.tap)
                    catalog = self.tap.input_catalog
                    if catalog is not None:
                        stream.apply_catalog(catalog)
                    self.built_streams[name] = stream
        return stream

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.classes


class ShapersOnDemand(Mapping):
    """Each stream's `RecordShaper` (compiled from its schema) when first used: a run compiles
    the shapers of the streams it reads (their parents' and children's too), not all."""

    def __init__(self, tap: Any):
        self.tap = tap
        self.shapers: dict[str, RecordShaper] = {}
        self.lock = threading.Lock()

    def __getitem__(self, name: str) -> RecordShaper:
        shaper = self.shapers.get(name)
        if shaper is None:
            spec = self.tap.specs[name]
            schema = self.tap.streams[name].schema
            with self.lock:
                shaper = self.shapers.get(name)
                if shaper is None:
                    shaper = self.shapers[name] = RecordShaper(schema, spec.created_field)
        return shaper

    def __iter__(self) -> Iterator[str]:
        return iter(self.tap.specs)

    def __len__(self) -> int:
        return len(self.tap.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.tap.specs


class StreamMapsOnDemand(dict):
    """The SDK mapper's `stream_maps`, each stream's registered from its catalog entry
    (`PluginMapper.register_raw_streams_from_catalog`, the SDK's own registration) when the
    stream first asks for its maps. Streams missing from the catalog have none (KeyError),
    as with the SDK's eager registration."""

    def __init__(self, mapper: Any, catalog: Catalog):
        super().__init__()
        self.mapper = mapper
        self.entries = {entry.stream or entry.tap_stream_id: entry for entry in catalog.values()}
        self.lock = threading.RLock()

    def __missing__(self, name: str) -> Any:
        entry = self.entries.get(name)
        if entry is None:
            raise KeyError(name)
        with self.lock:
            if not dict.__contains__(self, name):
                self.mapper.register_raw_streams_from_catalog(Catalog([(entry.tap_stream_id, entry)]))
        return dict.__getitem__(self, name)
