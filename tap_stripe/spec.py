"""What the tap knows about one Stripe table: a `StreamSpec` is pure data.

Each table's class (`tap_stripe.streams`: generated from Stripe's OpenAPI spec by
`scripts/generate.py`, with the project's choices in `overrides.py`) declares its spec as class
attributes; every mechanism (paging, windows, events, children) reads the `StreamSpec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class StreamKind(str, Enum):
    """How a table is read: a paged list, one object (`/v1/balance`), or a Reporting API report.
    A `str`, so it compares, prints and serialises as its value (`"list"`)."""

    LIST = "list"
    SINGLETON = "singleton"
    REPORT = "report"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StreamSpec:
    name: str
    """Stream name: the snake_case plural of the object (`charges`, `invoice_line_items`)."""
    path: str
    """The list endpoint; `{param}` placeholders are filled from the parent record."""
    object_types: tuple[str, ...]
    """The `object` values a record can carry."""
    kind: StreamKind = StreamKind.LIST
    """`list` (paged list endpoint), `singleton` (one object, e.g. `/v1/balance`), `report`."""
    rows_field: str | None = None
    """For a singleton: the field whose list items are the rows (`available`)."""
    parent: str | None = None
    """Parent stream whose records provide the ids this list needs."""
    parent_param: str | None = None
    """The path placeholder or required query parameter filled with the parent's id."""
    parent_via: str | None = None
    """`path` or `query`: where `parent_param` goes."""
    parent_fields: tuple[tuple[str, str], ...] = ()
    """Extra query parameters taken from parent record fields: (param, parent field)."""
    embedded_field: str | None = None
    """The parent field that embeds this list (first page only; `has_more` says more)."""
    embedded_when_expanded: bool = False
    """Stripe returns `embedded_field` only when the parent's request expands it (an "includable"
    list: a customer's `tax_ids`): the parent's list asks `expand[]=data.<embedded_field>` while
    this stream is read (`engine.children.Children.parent_query`)."""
    created_filter: bool = False
    """The list accepts `created[gte]`/`created[lt]`."""
    created_field: str | None = None
    """The record's creation time field (`created`; `date` for invoice items)."""
    query_params: tuple[str, ...] = ()
    required_params: tuple[str, ...] = ()
    list_params: tuple[tuple[str, str], ...] = ()
    """Fixed parameters sent on every list call, e.g. (("status", "all"),)."""
    expandable: tuple[tuple[str, str | None], ...] = ()
    """Id fields `expand[]` can turn into objects: (field, stream of that object)."""
    default_expand: tuple[str, ...] = ()
    """Fields expanded by default because Stripe returns them only when expanded."""
    event_types: tuple[str, ...] = ()
    """Event types whose `data.object` is this stream's object."""
    deleted_event: str | None = None
    retrieve_path: str | None = None
    """`GET` path for one object by id, `{id}` placeholder, when Stripe has one."""
    paginated: bool = True
    unsettled: tuple[tuple[str, str], ...] = ()
    """Objects with these field values can still change without an event (a balance transaction
    while `status` is `pending`): the stream is re-read from the oldest such object it emitted."""
    key_properties: tuple[str, ...] = ("id",)
    selected_by_default: bool = True
    oauth_readable: bool = True
    """False for tables Stripe does not let an OAuth token read."""
    notes: str = ""
    children: tuple[str, ...] = field(default=(), compare=False)

    @property
    def replication_key(self) -> str | None:
        """The creation-time field when the list can be windowed on it, else None.

        Child lists are read in full for each parent that is emitted, so they have none.
        """
        return self.created_field if self.created_filter and not self.parent else None

    def expansions(self, expand: Mapping[str, list[str]]) -> tuple[str, ...]:
        """Fields this run expands: the defaults and the `expand` setting's for this stream."""
        return (*self.default_expand, *expand.get(self.name, ()))

    def list_query(self, expand: dict[str, list[str]]) -> list[tuple[str, Any]]:
        """The parameters of every list call: fixed ones and `expand[]=data.<field>`."""
        return [*self.list_params, *(("expand[]", f"data.{f}") for f in self.expansions(expand))]
