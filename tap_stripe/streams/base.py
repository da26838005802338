"""The kinds of Stripe table, as SDK stream classes. A table is a thin subclass of one kind
that declares what Stripe says of it (`generated.py`) or what this project chose
(`overrides.py`); the class's `spec` is that declaration as data, which the engine reads.

| kind | read how |
|---|---|
| `CreatedWindowStream` | a list that takes `created`: created-time windows, then events |
| `FullTableStream` | a list without `created`: read whole each run, as a table version |
| `ChildStream` | a list under a parent (`/v1/customers/{customer}/tax_ids`): read for each parent emitted |
| `SingletonStream` | one object (`/v1/balance`), or the rows of one of its lists |
| `ReportStream` | a financial report of the Reporting API (`tap_stripe.reports`) |

Declarations a table may change where it is declared (class attributes, gathered into `spec`):
`list_params` (request parameters sent on every list call: the place for what the SDK's
`get_url_params` would add), `default_expand` (fields Stripe returns only when expanded),
`key_properties` (the primary key), `selected_by_default`, `oauth_readable`.

The one hook, called by the engine: `post_process(row, context)`, the SDK's, on each record
of the stream once it is shaped (in the worker that fetched it, before it is rendered;
`None` drops the record). Deletion records (`deleted: true`) do not pass through it.
The SDK's other places to change a stream (`get_url_params`, `parse_response`,
`request_records`, `get_records`, a `primary_keys` or `replication_key` class attribute) are
not what the engine reads: a class that defines one is refused when it is defined
(`TypeError`), naming the declaration or hook to use instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from importlib import resources
from typing import Any, ClassVar

from singer_sdk import Stream

from tap_stripe import reports
from tap_stripe.spec import StreamKind, StreamSpec

_SPEC_FIELDS = tuple(f.name for f in fields(StreamSpec))

# The SDK's names a table class may not define (the engine never calls or reads them), and what
# to define instead.
REFUSED = {
    "get_url_params": "declare `list_params` (request parameters sent on every list call)",
    "parse_response": "override `post_process(row, context)` (called on each shaped record)",
    "request_records": "override `post_process` or declare `list_params`",
    "get_records": "override `post_process` or declare `list_params`",
    "primary_keys": "declare `key_properties` (a tuple of field names)",
    "replication_key": "declare `key_properties` for the key; the replication key is the list's "
                       "`created_field` when it takes a `created` filter",
}


def _refuse_sdk_overrides(cls: type) -> None:
    """TypeError for a class body that defines a name of `REFUSED`."""
    for name, instead in REFUSED.items():
        if name in cls.__dict__:
            raise TypeError(f"{cls.__qualname__} defines `{name}`, which tap-stripe's engine does not use "
                            f"(it reads the class's declarations): {instead}")


def _pairs(value: Any, what: str, cls: type) -> tuple:
    """A declaration of pairs (`list_params`) as a tuple of 2-tuples; a mapping is taken too."""
    items = value.items() if isinstance(value, Mapping) else value
    try:
        pairs = tuple((str(k), str(v)) for k, v in items)
    except (TypeError, ValueError):
        raise TypeError(f"{cls.__qualname__}.{what} must be (name, value) pairs, e.g. (('status', 'all'),)") from None
    return pairs


def overrides_post_process(cls: type) -> bool:
    """Whether a stream class has its own `post_process` (the SDK's does nothing)."""
    return getattr(cls, "post_process", Stream.post_process) is not Stream.post_process


def load_schema(name: str, report_columns: list[str] | None = None) -> dict:
    """A stream's JSON Schema: generated (`schemas/<name>.json`), or built from a report's columns."""
    if name in reports.REPORTS_BY_NAME:  # built from the report's columns, which a setting may choose
        return reports.report_schema(reports.REPORTS_BY_NAME[name], report_columns)
    return json.loads((resources.files("tap_stripe") / "schemas" / f"{name}.json").read_text())


def narrow_expandable(schema: dict, spec: StreamSpec, expanded: set[str]) -> dict:
    """Type each top-level id field the way this run returns it: the object when the run
    expands it, else the id. The generated schema accepts both (`anyOf`), which some targets
    cannot load (target-postgres types the column by the first branch; see docs/targets.md).
    """
    properties = schema["properties"]
    for field_name, _ in spec.expandable:
        prop = properties.get(field_name)
        if not prop or "anyOf" not in prop:
            continue
        if field_name in {e.split(".")[0] for e in expanded}:
            objects = [m for m in prop["anyOf"] if "object" in (m.get("type") or [])]
            if objects:
                properties[field_name] = {**objects[0], "type": ["object", "null"]}
        else:
            properties[field_name] = {"type": ["string", "null"]}
    return schema


class StripeStream(Stream):
    """One Stripe table. Subclasses declare it with class attributes named like `StreamSpec`'s
    fields; `spec` gathers them once the class is defined."""

    name: ClassVar[str]  # type: ignore[misc]
    path: ClassVar[str]
    object_types: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[StreamKind] = StreamKind.LIST
    spec: ClassVar[StreamSpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _refuse_sdk_overrides(cls)
        if "kind" in cls.__dict__:  # a class may say `kind = "singleton"`
            cls.kind = StreamKind(cls.kind)
        if "list_params" in cls.__dict__:
            cls.list_params = _pairs(cls.__dict__["list_params"], "list_params", cls)  # type: ignore[attr-defined]
        if isinstance(cls.__dict__.get("key_properties"), (list, str)):
            keys = cls.__dict__["key_properties"]
            cls.key_properties = (keys,) if isinstance(keys, str) else tuple(keys)  # type: ignore[attr-defined]
        if "name" in cls.__dict__ or hasattr(cls, "spec"):
            cls.spec = StreamSpec(**{f: getattr(cls, f) for f in _SPEC_FIELDS if hasattr(cls, f)})

    def __init__(self, tap: Any):
        spec = self.spec
        columns = (tap.config.get("report_columns") or {}).get(spec.name)
        expanded = set(spec.expansions(tap.config.get("expand") or {}))
        schema = narrow_expandable(self.base_schema(columns), spec, expanded)
        super().__init__(tap, schema=schema, name=spec.name)
        keys = list(spec.key_properties)
        if tap.multi_account and keys:
            keys = ["_account_id", *keys]
        self.primary_keys = keys
        # full_resync_streams too: incremental between their periodic full re-reads.
        self.replication_key = self.stream_replication_key()
        self.forced_replication_method = "INCREMENTAL" if self.replication_key else "FULL_TABLE"
        self.selected_by_default = spec.selected_by_default

    @classmethod
    def base_schema(cls, report_columns: list[str] | None = None) -> dict:
        """The table's JSON Schema before its expandable fields are narrowed: generated, or a
        report's (a stream of the `custom_streams` setting may have another, `configured.py`)."""
        return load_schema(cls.spec.name, report_columns)

    def stream_replication_key(self) -> str | None:
        """The record field that moves with the bookmark, for the catalog (None: full table)."""
        return self.spec.replication_key

    def get_records(self, context: Mapping[str, Any] | None) -> Iterable[dict]:
        """Records of this stream alone, through the engine (the SDK's sync path)."""
        yield from self._tap.collect(self.name)  # type: ignore[attr-defined]  # TapStripe.collect


class CreatedWindowStream(StripeStream):
    """A list that takes `created[gte]`/`created[lt]`: read in created-time windows from its
    bookmark, changes and deletions from events."""

    created_filter = True
    created_field: ClassVar[str | None] = "created"


class FullTableStream(StripeStream):
    """A list without a `created` filter: read whole each run, as one table version."""

    created_filter = False


class ChildStream(StripeStream):
    """A list under a parent: read for every parent record the run emits (from the page the
    parent embeds when it does, paged to its end)."""

    parent: ClassVar[str]
    parent_param: ClassVar[str]
    parent_via: ClassVar[str] = "path"


class SingletonStream(StripeStream):
    """One object per run (`/v1/balance`), or the rows of one of its lists (`rows_field`)."""

    kind = StreamKind.SINGLETON


class ReportStream(StripeStream):
    """A financial report of Stripe's Reporting API: one report run per interval (see
    `tap_stripe.reports`); `name` is its `ReportSpec`'s."""

    kind = StreamKind.REPORT
    path = "/v1/reporting/report_runs"
    selected_by_default = False
    oauth_readable = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        report = reports.REPORTS_BY_NAME[cls.name]
        cls.key_properties = reports.report_key_properties(report)  # type: ignore[attr-defined]
        cls.notes = report.description  # type: ignore[attr-defined]
        super().__init_subclass__(**kwargs)

    def stream_replication_key(self) -> str | None:
        return reports.report_replication_key(reports.REPORTS_BY_NAME[self.name])
