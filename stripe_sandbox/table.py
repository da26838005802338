"""The tables the sandbox serves: read from `tap_stripe.streams_table` and `tap_stripe/schemas`.

Falls back to a tiny built-in stand-in when the tap package is not importable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Spec:
    """Duck-type compatible subset of tap_stripe.spec.StreamSpec."""
    name: str
    path: str
    object_types: tuple
    kind: str = "list"
    parent: str | None = None
    parent_param: str | None = None
    parent_via: str | None = None
    parent_fields: tuple = ()
    embedded_field: str | None = None
    created_filter: bool = False
    created_field: str | None = None
    query_params: tuple = ()
    required_params: tuple = ()
    list_params: tuple = ()
    expandable: tuple = ()
    default_expand: tuple = ()
    event_types: tuple = ()
    deleted_event: str | None = None
    retrieve_path: str | None = None
    paginated: bool = True
    key_properties: tuple = ("id",)
    children: tuple = field(default=())


_P = ("ending_before", "expand", "limit", "starting_after")
STANDIN = (
    Spec("customers", "/v1/customers", ("customer",), created_filter=True, created_field="created",
         query_params=("created", "email") + _P, event_types=("customer.created", "customer.updated"),
         deleted_event="customer.deleted", retrieve_path="/v1/customers/{id}"),
    Spec("charges", "/v1/charges", ("charge",), created_filter=True, created_field="created",
         query_params=("created", "customer", "payment_intent") + _P,
         expandable=(("customer", "customers"), ("invoice", "invoices")),
         event_types=("charge.captured", "charge.succeeded", "charge.updated"), retrieve_path="/v1/charges/{id}"),
    Spec("invoices", "/v1/invoices", ("invoice",), created_filter=True, created_field="created",
         query_params=("created", "customer", "status", "subscription") + _P,
         expandable=(("customer", "customers"), ("subscription", "subscriptions")),
         event_types=("invoice.created", "invoice.updated", "invoice.paid"), deleted_event="invoice.deleted",
         retrieve_path="/v1/invoices/{id}"),
    Spec("invoice_line_items", "/v1/invoices/{invoice}/lines", ("line_item",), parent="invoices",
         parent_param="invoice", parent_via="path", embedded_field="lines", query_params=_P),
    Spec("subscriptions", "/v1/subscriptions", ("subscription",), created_filter=True, created_field="created",
         query_params=("created", "customer", "price", "status") + _P, list_params=(("status", "all"),),
         expandable=(("customer", "customers"),),
         event_types=("customer.subscription.created", "customer.subscription.updated"),
         deleted_event="customer.subscription.deleted", retrieve_path="/v1/subscriptions/{id}"),
    Spec("subscription_items", "/v1/subscription_items", ("subscription_item",), parent="subscriptions",
         parent_param="subscription", parent_via="query", embedded_field="items", created_field="created",
         query_params=("subscription",) + _P, required_params=("subscription",),
         retrieve_path="/v1/subscription_items/{id}"),
    Spec("refunds", "/v1/refunds", ("refund",), created_filter=True, created_field="created",
         query_params=("charge", "created", "payment_intent") + _P, expandable=(("charge", "charges"),),
         event_types=("charge.refund.updated",), retrieve_path="/v1/refunds/{id}"),
    Spec("events", "/v1/events", ("event",), created_filter=True, created_field="created",
         query_params=("created", "delivery_success", "type", "types") + _P, retrieve_path="/v1/events/{id}"),
    Spec("accounts", "/v1/accounts", ("account",), created_filter=True, created_field="created",
         query_params=("created",) + _P, retrieve_path="/v1/accounts/{id}"),
    Spec("balance", "/v1/balance", ("balance",), kind="singleton"),
)


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def load_table(table=None, schema_dir=None):
    """(specs, schemas): specs from tap_stripe when importable, else the stand-in."""
    if table is None:
        if os.environ.get("STRIPE_SANDBOX_STANDIN"):
            table = STANDIN
        else:
            try:
                from tap_stripe.streams_table import STREAMS  # type: ignore
                table = STREAMS
            except Exception:  # noqa: BLE001 - tap not there yet
                table = STANDIN
    if schema_dir is None:
        schema_dir = _repo_root() / "tap_stripe" / "schemas"
    schemas = {}
    for s in table:
        p = Path(schema_dir) / f"{s.name}.json"
        if p.exists():
            try:
                schemas[s.name] = json.loads(p.read_text())
            except ValueError:
                pass
    return tuple(table), schemas
