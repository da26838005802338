"""The tables the sandbox serves: `Spec`s built from `resources.py`, which
`scripts/generate_sandbox.py` generates from Stripe's Python SDK (the API version it pins,
`API_VERSION`) and Stripe's example objects.

The sandbox models Stripe from Stripe's SDK, spec material and documentation only; it never reads
the tap's modules or files (issue #15), so that a wrong assumption of the tap is not also the
sandbox's and the tests comparing the tap with `Sandbox.truth` can see it.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from . import resources


@dataclass(frozen=True)
class Spec:
    """One table: a Stripe list endpoint (or the balance, read whole) and its objects."""
    name: str
    """The table's name in the control API (`truth`, `create`, …)."""
    path: str
    """The list endpoint; `{param}` is the parent's id."""
    object_types: tuple
    """The `object` values of its items (the first is the one the sandbox fabricates)."""
    item_schemas: tuple = ()
    """Component schemas of the items (`components.py`)."""
    kind: str = "list"
    """`list`, or `singleton` (one object: `GET /v1/balance`)."""
    rows_field: str | None = None
    """For a singleton's row table: the list field whose items are the rows."""
    parent: str | None = None
    parent_param: str | None = None
    """The path placeholder or required query parameter that takes the parent's id."""
    parent_via: str | None = None
    """`path` or `query`."""
    parent_fields: tuple = ()
    """Required query parameters that take a field of the parent: (param, parent field)."""
    embedded_field: str | None = None
    """The parent's field that holds this list (first page)."""
    created_filter: bool = False
    """The list takes `created` (`created[gte]`, …)."""
    created_field: str | None = None
    """The item's creation time field (`created`; an invoice item's `date`)."""
    query_params: tuple = ()
    required_params: tuple = ()
    expandable: tuple = ()
    """(field, table) for ids that `expand[]` turns into an object of that table (None: not served);
    a dotted field is an id inside a sub-object (`parent.subscription_details.subscription`)."""
    expandable_fields: tuple = ()
    """Every field `expand[]` accepts (as the spec's `x-expandableFields`: ids, sub-objects, lists)."""
    event_types: tuple = ()
    """Event types whose `data.object` is this table's object."""
    deleted_event: str | None = None
    retrieve_path: str | None = None
    paginated: bool = True
    fields: tuple = ()
    """Top-level fields of the items."""
    children: tuple = field(default=())


API_VERSION = resources.API_VERSION
SPECS: tuple[Spec, ...] = tuple(Spec(**entry) for entry in resources.TABLES)


def load_table(table=None, schema_dir=None):
    """(specs, schemas): the generated table, or `table` (any objects with `Spec`'s fields).
    `schemas` maps a table's name to a JSON schema read from `<schema_dir>/<name>.json`, which
    then replaces the generated object schema; without `schema_dir` it is empty."""
    specs = tuple(SPECS if table is None else table)
    schemas = {}
    if schema_dir is not None:
        for spec in specs:
            path = Path(schema_dir) / f"{spec.name}.json"
            if path.exists():
                with contextlib.suppress(ValueError):
                    schemas[spec.name] = json.loads(path.read_text())
    return specs, schemas
