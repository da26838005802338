"""The input catalog, read for what a run selects: lean runs.

A catalog from discovery describes every table (over a hundred, with their schemas and
metadata: megabytes), while a scheduled run usually syncs one or a few. The SDK parses every
entry (`Catalog.from_dict`: each schema into `Schema` objects), builds every stream and
registers each with its mapper; here a catalog file's entries are kept as JSON text until
read (`read_catalog`), an entry's schema and metadata are parsed when something first reads
them (`LazyCatalogEntry`), and whether a stream is selected is read from its root metadata
alone with the SDK's own rule (`root_selected`): a run does that work for the streams it
syncs, and discovery for all. (Streams, their maps and their record shapers are built when
first used: `tap_stripe.on_demand`.)

Each entry is also aligned with the run's settings as it is parsed (`aligned_keys`,
`aligned_schema`, `aligned_metadata`), whatever config it was discovered with: expandable
fields typed as this run returns them and, with several accounts, keys that include
`_account_id` (ids can repeat across accounts).

The other way, `--discover` prints the catalog as the SDK would, faster (`catalog_text`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
import orjson
from singer_sdk.singerlib import Catalog, CatalogEntry, MetadataMapping, Schema

from tap_stripe.settings import several_accounts
from tap_stripe.streams import SPECS
from tap_stripe.streams.base import load_schema, narrow_expandable

_PARSE_LOCK = threading.RLock()


def aligned_keys(entry: Mapping[str, Any], several: bool) -> list | None:
    """The entry's key properties for this run: `_account_id` first with several accounts."""
    keys = entry.get("key_properties")
    if several and keys and "_account_id" not in keys:
        return ["_account_id", *keys]
    return keys


def aligned_schema(entry: Mapping[str, Any], expand: Mapping[str, Any]) -> dict:
    """The entry's schema with each expandable id field typed as this run returns it (a
    copy where anything changes; the entry's own dicts are left as they are)."""
    schema = entry.get("schema", {})
    spec = SPECS.get(entry.get("tap_stream_id") or "")
    properties = (schema or {}).get("properties")
    if spec is None or not properties or not spec.expandable:
        return schema
    fresh = narrow_expandable(load_schema(spec.name), spec, set(spec.expansions(expand)))
    changed = {f: fresh["properties"][f] for f, _ in spec.expandable if f in properties}
    if not changed:
        return schema
    return {**schema, "properties": {**properties, **changed}}


def aligned_metadata(entry: Mapping[str, Any], keys: list | None) -> list:
    """The entry's metadata list with the root's `table-key-properties` set to `keys` when
    the keys were changed for this run (a copy of what changes)."""
    metadata = entry.get("metadata", [])
    if keys is entry.get("key_properties"):
        return metadata
    out = []
    for meta in metadata:
        if meta.get("breadcrumb") == [] and "table-key-properties" in meta.get("metadata", {}):
            meta = {**meta, "metadata": {**meta["metadata"], "table-key-properties": keys}}
        out.append(meta)
    return out


def root_selected(metadata: list) -> Any:
    """Whether an entry's stream is selected, from its raw metadata list: the SDK's rule
    (`MetadataMapping.resolve_selection` at the root breadcrumb), without parsing the
    metadata of every property."""
    root = [m for m in metadata if tuple(m["breadcrumb"]) == ()][-1:]
    if not root:
        return True  # no root metadata: the stream's mask has no root, which reads as selected
    return MetadataMapping.from_iterable(root).resolve_selection()[()]


class LazyCatalogEntry(CatalogEntry):
    """A `CatalogEntry` whose schema and metadata are parsed (`Schema.from_dict`,
    `MetadataMapping.from_iterable`, exactly as `CatalogEntry.from_dict` does) when first
    read, and aligned with the run's settings then."""

    __slots__ = ("expand", "parsed_metadata", "parsed_schema", "raw", "run_keys")

    def __init__(self, raw: Mapping[str, Any], config: Mapping[str, Any]):
        keys = aligned_keys(raw, several_accounts(config))
        self.raw = raw
        self.expand = config.get("expand") or {}
        self.run_keys = keys
        self.parsed_schema: Schema | None = None
        self.parsed_metadata: MetadataMapping | None = None
        self.tap_stream_id = raw["tap_stream_id"]
        self.stream = raw.get("stream")
        self.replication_key = raw.get("replication_key")
        self.key_properties = keys
        self.database = raw.get("database_name")
        self.table = raw.get("table_name")
        self.is_view = raw.get("is_view")
        self.row_count = raw.get("row_count")
        self.stream_alias = raw.get("stream_alias")
        self.replication_method = raw.get("replication_method")

    @property
    def schema(self) -> Schema:
        if self.parsed_schema is None:
            with _PARSE_LOCK:
                if self.parsed_schema is None:
                    self.parsed_schema = Schema.from_dict(aligned_schema(self.raw, self.expand))
        return self.parsed_schema

    @schema.setter
    def schema(self, value: Schema) -> None:
        self.parsed_schema = value

    @property
    def metadata(self) -> MetadataMapping:
        if self.parsed_metadata is None:
            with _PARSE_LOCK:
                if self.parsed_metadata is None:
                    metadata = aligned_metadata(self.raw, self.run_keys)
                    self.parsed_metadata = MetadataMapping.from_iterable(metadata)
        return self.parsed_metadata

    @metadata.setter
    def metadata(self, value: MetadataMapping) -> None:
        self.parsed_metadata = value

    @property
    def selected(self) -> Any:
        """Whether the stream is selected (see `root_selected`)."""
        if self.parsed_metadata is None:
            if isinstance(self.raw, RawEntry):
                return self.raw.selected
            return root_selected(self.raw.get("metadata", []))
        if () not in self.parsed_metadata:
            return True  # no root metadata: the stream's mask has no root, which reads as selected
        root = MetadataMapping()
        root[()] = self.parsed_metadata[()]
        return root.resolve_selection()[()]


def lean_catalog(raw: Mapping[str, Any], config: Mapping[str, Any]) -> Catalog:
    """`Catalog.from_dict(raw)` aligned with `config`, each entry parsed when first read."""
    catalog = Catalog()
    for stream in raw.get("streams", []):
        entry = LazyCatalogEntry(stream, config)
        catalog[entry.tap_stream_id] = entry
    return catalog


# ----- reading a catalog file: each entry parsed when first read ----------------------------

class _MetadataItem(msgspec.Struct):
    breadcrumb: msgspec.Raw
    metadata: msgspec.Raw


class _EntryHead(msgspec.Struct):
    """The fields of a catalog entry a run reads from every entry (`LazyCatalogEntry`), and
    where its schema and metadata are; unset when the entry lacks them."""

    tap_stream_id: Any = msgspec.UNSET
    stream: Any = msgspec.UNSET
    replication_key: Any = msgspec.UNSET
    key_properties: Any = msgspec.UNSET
    database_name: Any = msgspec.UNSET
    table_name: Any = msgspec.UNSET
    is_view: Any = msgspec.UNSET
    row_count: Any = msgspec.UNSET
    stream_alias: Any = msgspec.UNSET
    replication_method: Any = msgspec.UNSET
    schema: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    metadata: list[_MetadataItem] | msgspec.UnsetType = msgspec.UNSET


class _CatalogFile(msgspec.Struct):
    streams: list[msgspec.Raw] | msgspec.UnsetType = msgspec.UNSET


_HEAD_FIELDS = frozenset(_EntryHead.__struct_fields__)
_ENTRY_DECODER = msgspec.json.Decoder(_EntryHead)


class RawEntry(Mapping):
    """A catalog entry as read from the file: the JSON text of the entry, parsed (`orjson`,
    as the whole file would have been) when a field other than its head is first read. Its
    head (the fields every entry is read for) and whether it is selected (`root_selected`, on
    its root metadata alone) are known without parsing it."""

    def __init__(self, text: bytes, head: _EntryHead):
        self.text = text
        self.head = {f: v for f in _HEAD_FIELDS - {"schema", "metadata"}
                     if (v := getattr(head, f)) is not msgspec.UNSET}
        self.has = {f for f in _HEAD_FIELDS if getattr(head, f) is not msgspec.UNSET}
        root: list[dict] = []
        # The last root entry counts, as in the SDK's mapping. A property's breadcrumb holds
        # names (quotes), the root's is `[]` (maybe with spaces): short ones are looked at.
        for item in [item for item in head.metadata or () if len(item.breadcrumb) < 16]:
            crumb = bytes(item.breadcrumb)
            if b'"' not in crumb and orjson.loads(crumb) == []:
                root = [{"breadcrumb": [], "metadata": orjson.loads(bytes(item.metadata))}]
        self.selected: Any = root_selected(root)
        self.parsed: dict | None = None
        self.lock = threading.Lock()

    def full(self) -> dict:
        if self.parsed is None:
            with self.lock:
                if self.parsed is None:
                    self.parsed = orjson.loads(self.text)
        return self.parsed

    def __getitem__(self, key: str) -> Any:
        if key in self.head:
            return self.head[key]
        if key in _HEAD_FIELDS and key not in self.has:
            raise KeyError(key)
        return self.full()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.full())

    def __len__(self) -> int:
        return len(self.full())


def read_catalog(data: bytes) -> dict | None:
    """A catalog file's `{"streams": [...]}` with each entry a `RawEntry` (read whole: ~5 ms
    for a 4.5 MB catalog where parsing it takes ~25), or None when the file is not a JSON
    object with a list of entry objects: the caller then parses it whole, as before."""
    try:
        catalog = msgspec.json.decode(data, type=_CatalogFile)
        if catalog.streams is msgspec.UNSET:
            return {}
        streams = []
        for text in catalog.streams:
            raw = bytes(text)
            try:
                streams.append(RawEntry(raw, _ENTRY_DECODER.decode(raw)))
            except (msgspec.ValidationError, orjson.JSONDecodeError):  # not laid out as expected
                streams.append(orjson.loads(raw))
    except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError):
        return None
    return {"streams": streams}


_NOT_ASCII = re.compile("[^\x00-\x7e]")


def _has_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            stack.extend(item.values())
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float or not (kind is str or kind is int or kind is bool or item is None
                                   or isinstance(item, str)):  # a str enum (catalog metadata)
            return True  # a float, or anything else orjson and simplejson may write differently
    return False


def _ascii_escape(match: re.Match) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # a surrogate pair, as JSON writes it
        code -= 0x10000
        return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def catalog_text(catalog: dict) -> str | None:
    """Exactly the SDK's catalog text (`dump_json(catalog, indent=2)`: simplejson with
    `separators=(",", ":")`, ASCII only), written by orjson: simplejson indents in pure
    Python (~70 ms for this tap's catalog), orjson in ~5 ms. orjson's indented text differs
    only in a space after each key's colon, non-ASCII characters unescaped, and some floats
    (`1e-05`: `0.00001`); for a catalog where these cannot be told apart safely, None (the
    SDK's text then)."""
    if _has_float(catalog):
        return None
    try:
        text = orjson.dumps(catalog, option=orjson.OPT_INDENT_2).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. a Decimal, a key that is not a string, an integer beyond 64 bits
        return None
    if not text.isascii() or "\x7f" in text:
        text = _NOT_ASCII.sub(_ascii_escape, text.replace("\x7f", "\\u007f"))
    # After a key, `": ` becomes `":`. In JSON text `": ` is always a key's end, unless the
    # quote is a string's escaped one (`\"`).
    if '\\": ' in text:
        return None
    return text.replace('": ', '":')
