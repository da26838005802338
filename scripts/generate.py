#!/usr/bin/env python3
"""Generate the tap's stream table and JSON schemas from Stripe's API description.

    python scripts/generate.py [--out tap_stripe]                   # from the installed `stripe` package
    python scripts/generate.py --openapi spec3.json [--out DIR]     # from an OpenAPI spec file
    python scripts/generate.py --stripe-dir DIR [--out DIR]         # from a stripe package folder

The default source is Stripe's Python SDK, the `stripe` package pinned in pyproject.toml's
`test` extra: it is generated from Stripe's current spec, and `scripts/stripe_sdk_source.py`
reads its typed sources with `ast` (never importing it) into the part of an OpenAPI document
this script needs. `--openapi` reads a spec file instead (Stripe's `openapi/spec3.json` of any
version), with the same rules and the same output format.

Writes `<out>/streams/generated.py` (`API_VERSION` is the source's version),
`<out>/schemas/<stream>.json` and `<out>/sensitive_fields.json`. All are committed;
`tests/test_generate.py` regenerates into a temporary folder and fails on any drift.

The reviewed rules (which lists become streams, their names, parents, exclusions, which
object an event is about, and why) are the tables at the top of this file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tap_stripe.output.records import TAP_FIELD_SCHEMAS

# Lists that are not streams, and why. The README's streams section prints these.
EXCLUDED = {
    "/v1/apps/secrets": "secrets of Stripe Apps; a tap must never copy secrets",
    "/v1/balance/history": "legacy alias of /v1/balance_transactions (stream `balance_transactions`)",
    "/v1/linked_accounts": "legacy alias of /v1/financial_connections/accounts",
    "/v1/linked_accounts/{account}/owners": "legacy alias of financial connections account owners",
    "/v1/accounts/{account}/people": "alias of /v1/accounts/{account}/persons (stream `persons`)",
    "/v1/charges/{charge}/refunds": "every refund is in /v1/refunds (stream `refunds`)",
    "/v1/customers/{customer}/bank_accounts": "legacy subset of customer sources (stream `customer_sources`)",
    "/v1/customers/{customer}/cards": "legacy subset of customer sources (stream `customer_sources`)",
    "/v1/customers/{customer}/subscriptions": "every subscription is in /v1/subscriptions?status=all "
                                              "(stream `subscriptions`)",
    "/v1/invoices/upcoming/lines": "a computed preview, not stored data",
    "/v1/credit_notes/preview/lines": "a computed preview, not stored data",
    "/v1/sources/{source}/source_transactions": "sources cannot be listed, so there are no parent ids to iterate",
    "/v1/tax/calculations/{calculation}/line_items": "tax calculations cannot be listed (and expire after 48 hours)",
    "/v1/tax/transactions/{transaction}/line_items": "tax transactions cannot be listed, "
                                                     "so there are no parent ids to iterate",
    "/v1/billing/meters/{id}/event_summaries": "aggregates computed on request for one customer and time range "
                                               "(required `customer`, `start_time`, `end_time`), not stored objects",
}

# Stream names that the path does not give directly.
NAMES = {
    "/v1/invoiceitems": "invoice_items",
    "/v1/test_helpers/test_clocks": "test_clocks",
    "/v1/sigma/scheduled_query_runs": "scheduled_query_runs",
    "/v1/reporting/report_runs": "report_runs",
    "/v1/reporting/report_types": "report_types",
    "/v1/accounts/{account}/capabilities": "capabilities",
    "/v1/accounts/{account}/external_accounts": "external_accounts",
    "/v1/accounts/{account}/persons": "persons",
    "/v1/application_fees/{id}/refunds": "application_fee_refunds",
    "/v1/checkout/sessions/{session}/line_items": "checkout_session_line_items",
    "/v1/credit_notes/{credit_note}/lines": "credit_note_line_items",
    "/v1/customers/{customer}/balance_transactions": "customer_balance_transactions",
    "/v1/customers/{customer}/cash_balance_transactions": "customer_cash_balance_transactions",
    "/v1/customers/{customer}/payment_methods": "customer_payment_methods",
    "/v1/customers/{customer}/sources": "customer_sources",
    "/v1/customers/{customer}/tax_ids": "customer_tax_ids",
    "/v1/financial_connections/accounts/{account}/owners": "financial_connections_account_owners",
    "/v1/invoices/{invoice}/lines": "invoice_line_items",
    "/v1/payment_links/{payment_link}/line_items": "payment_link_line_items",
    "/v1/quotes/{quote}/computed_upfront_line_items": "quote_computed_upfront_line_items",
    "/v1/quotes/{quote}/line_items": "quote_line_items",
    "/v1/subscription_items/{subscription_item}/usage_record_summaries": "usage_record_summaries",
    "/v1/transfers/{id}/reversals": "transfer_reversals",
    "/v1/payment_intents/{intent}/amount_details_line_items": "payment_intent_amount_details_line_items",
    "/v1/products/{product}/features": "product_features",
}

# Lists that need a parent's id as a required query parameter: path -> (parent stream, param).
QUERY_PARENTS = {
    "/v1/subscription_items": ("subscriptions", "subscription"),
    "/v1/setup_attempts": ("setup_intents", "setup_intent"),
    "/v1/radar/value_list_items": ("radar_value_lists", "value_list"),
    "/v1/entitlements/active_entitlements": ("customers", "customer"),
    "/v1/financial_connections/transactions": ("financial_connections_accounts", "account"),
    "/v1/issuing/tokens": ("issuing_cards", "card"),
    "/v1/payment_attempt_records": ("payment_records", "payment_record"),
    **{
        f"/v1/treasury/{name}": ("treasury_financial_accounts", "financial_account")
        for name in (
            "credit_reversals", "debit_reversals", "inbound_transfers", "outbound_payments",
            "outbound_transfers", "received_credits", "received_debits",
            "transaction_entries", "transactions",
        )
    },
}

# Extra required query parameters filled from a parent record's field: path -> ((param, field),).
PARENT_FIELDS = {
    "/v1/financial_connections/accounts/{account}/owners": (("ownership", "ownership"),),
}

# Fixed list parameters: read every status, not Stripe's default subset.
# Parent fields that look like this list but are not it.
NOT_EMBEDDED = {"quote_computed_upfront_line_items"}

# Key properties when `id` is only unique within the parent.
KEYS = {"capabilities": ("account", "id")}

# Tables Stripe does not let an OAuth token read (see Striim's reader notes).
OAUTH_UNREADABLE = {"accounts", "external_accounts", "report_runs", "report_types",
                    "radar_value_lists", "radar_value_list_items"}

# Objects read whole each run: name -> (path, object, field whose list items are the rows,
# key). The balance is one record per run (its history); its available and pending amounts
# are also tables of their own, one row per currency (Striim's AvailableBalance and
# PendingBalance). A row's schema is the item schema of that field of the `balance` object.
SINGLETONS = {
    "balance": ("/v1/balance", "balance", None, ()),
    "balance_available": ("/v1/balance", "balance_amount", "available", ("currency",)),
    "balance_pending": ("/v1/balance", "balance_amount", "pending", ("currency",)),
}

# The object an event is about (its `data.object`) where the rule finds none or the wrong one:
# event type prefix -> object (`a|b`: one of several). These come first. The rule: the object
# the SDK's event class fetches (`stripe/events/_v1_<type>_event.py`), else the type less its
# action when that is an object (`billing.meter`), with `_` for the namespace dot
# (`issuing_card` -> `issuing.card`), else its last part when the first is an object
# (`charge.dispute` -> `dispute`). tests/test_generate.py checks the result against Stripe's
# event catalog.
EVENT_OBJECTS = {
    "account.external_account": "bank_account|card",  # an account's payout destinations
    "customer.source": "account|bank_account|card|source",  # a customer's legacy payment sources
    "application_fee.refund": "fee_refund",  # the object of an application fee's refunds
    "billing.alert.triggered": "billing.alert_triggered",  # the trigger; the SDK's event fetches the alert
    "sigma.scheduled_query_run": "scheduled_query_run",  # Sigma's object has no `sigma.` namespace
    "source.mandate_notification": "source_mandate_notification",
    "source.transaction": "source_transaction",
}

# How deep component references are inlined before an object becomes untyped JSON.
MAX_REF_DEPTH = 4
EXPANDED_REF_DEPTH = 3  # an expanded object is typed at its first levels only


class SchemaBuilder:
    def __init__(self, components: dict):
        self.components = components

    def build(self, name: str) -> dict:
        schema = self.convert({"$ref": f"#/components/schemas/{name}"}, depth=0, chain=(), nullable=False)
        schema.setdefault("properties", {})
        return schema

    def convert(self, node: dict, depth: int, chain: tuple, nullable: bool = True) -> dict:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[1]
            target = self.components[name]
            if name in chain or depth > MAX_REF_DEPTH:
                return _typed(_json_types(target), nullable)
            return self.convert({**target, "nullable": node.get("nullable")}, depth + 1, (*chain, name), nullable)
        if "anyOf" in node:
            return self._any_of(node, depth, chain, nullable)
        types = _json_types(node)
        if types == ["object"]:
            props = node.get("properties")
            extra = node.get("additionalProperties")
            if not props:
                out = _typed(["object"], nullable)
                if isinstance(extra, dict) and extra.get("type") in ("string", "integer", "boolean", "number"):
                    out["additionalProperties"] = {"type": [extra["type"], "null"]}
                return out
            out = _typed(["object"], nullable)
            out["properties"] = {
                key: self._property(value, depth, chain) for key, value in sorted(props.items())
            }
            return out
        if types == ["array"]:
            out = _typed(["array"], nullable)
            items = node.get("items")
            out["items"] = self.convert(items, depth, chain, nullable=False) if items else {}
            return out
        if _is_unix_time(node):
            return {"type": ["string", "null"], "format": "date-time"}
        if not types:
            return {}
        return _typed(types, nullable)

    def _property(self, value: dict, depth: int, chain: tuple) -> dict:
        if "x-expansionResources" in value:
            # An id that `expand[]` turns into an object: accept both.
            objects = [
                self.convert(ref, depth + EXPANDED_REF_DEPTH, chain, nullable=False)
                for ref in value["x-expansionResources"]["oneOf"]
            ]
            return {"anyOf": [{"type": "string"}, *_merge_objects(objects), {"type": "null"}]}
        return self.convert(value, depth, chain)

    def _any_of(self, node: dict, depth: int, chain: tuple, nullable: bool) -> dict:
        members = [m for m in node["anyOf"] if not (m.get("type") == "string" and m.get("enum") == [""])]
        converted = [self.convert(m, depth, chain, nullable=False) for m in members]
        if len(converted) == 1:
            out = dict(converted[0])
            if "type" in out:
                out["type"] = _with_null(out["type"])
            return out
        converted = _merge_objects(converted)
        if len(converted) == 1:
            return {**converted[0], "type": _with_null(converted[0]["type"])}
        if all(set(c) == {"type"} for c in converted):
            merged = sorted({t for c in converted for t in _as_list(c["type"])} | {"null"})
            return {"type": merged}
        return {"anyOf": [*converted, {"type": "null"}]}


def _is_unix_time(node: dict) -> bool:
    """`format: unix-time`, or an integer the spec describes as a Unix time but forgot to mark
    (`subscription_item.created`, `account_terms_of_service.date`, …)."""
    if node.get("format") == "unix-time":
        return True
    text = (node.get("description") or "").lower()
    return node.get("type") == "integer" and ("unix epoch" in text or "unix timestamp" in text)


def _merge_objects(schemas: list[dict]) -> list[dict]:
    """Merge the object members of a union (e.g. customer | deleted_customer) into one."""
    objects = [s for s in schemas if _as_list(s.get("type")) and "object" in _as_list(s.get("type"))]
    others = [s for s in schemas if s not in objects]
    if len(objects) <= 1:
        return schemas
    props: dict = {}
    for obj in objects:
        for key, value in obj.get("properties", {}).items():
            props.setdefault(key, value)
    merged = {"type": ["object"]}
    if props:
        merged["properties"] = dict(sorted(props.items()))
    return [*others, merged]


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _with_null(types) -> list:
    return sorted(set(_as_list(types)) | {"null"})


def _typed(types: list[str], nullable: bool) -> dict:
    return {"type": _with_null(types) if nullable else list(types)}


def _json_types(node: dict) -> list[str]:
    t = node.get("type")
    if t is None and "properties" in node:
        t = "object"
    return _as_list(t)


def list_item_schemas(op: dict) -> list[str] | None:
    """The item component names of a GET that returns a Stripe list, else None."""
    schema = op.get("responses", {}).get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
    props = schema.get("properties", {})
    if props.get("object", {}).get("enum") != ["list"] or "data" not in props:
        return None
    items = props["data"].get("items", {})
    refs = [items] if "$ref" in items else items.get("anyOf", items.get("oneOf", []))
    return [r["$ref"].rsplit("/", 1)[1] for r in refs if "$ref" in r]


def stream_name(path: str) -> str:
    return NAMES.get(path) or path.removeprefix("/v1/").replace("/", "_")


def object_value(component: dict, name: str) -> str:
    enum = component.get("properties", {}).get("object", {}).get("enum")
    return enum[0] if enum else name


def load_openapi(path: Path) -> tuple[dict, dict[str, list[str]]]:
    """A spec file and its event types by object (from the webhook endpoints' `enabled_events`)."""
    spec = json.loads(path.read_text())
    body = spec["paths"]["/v1/webhook_endpoints"]["post"]["requestBody"]["content"]
    enabled = body["application/x-www-form-urlencoded"]["schema"]["properties"]["enabled_events"]
    types = [t for t in enabled["items"]["enum"] if t != "*"]
    return spec, events_by_object(types, {}, spec["components"]["schemas"])


def load_sdk(root: Path | None = None) -> tuple[dict, dict[str, list[str]]]:
    """The installed `stripe` package (or the package folder `root`), read as source
    (scripts/stripe_sdk_source.py)."""
    from stripe_sdk_source import SdkReader, event_types

    reader = SdkReader(root)
    spec = reader.openapi()
    types, related = event_types(reader)
    return spec, events_by_object(types, related, spec["components"]["schemas"])


def event_object(event_type: str, related: dict[str, str], objects: set[str]) -> str | None:
    """The object an event type is about (EVENT_OBJECTS says how), or None if none is known."""
    for prefix, value in EVENT_OBJECTS.items():
        if event_type == prefix or event_type.startswith(prefix + "."):
            return value
    if event_type in related:
        return related[event_type]
    head = event_type.rsplit(".", 1)[0]
    first, _, rest = head.partition(".")
    candidates = [head, head.replace("_", ".", 1)] + ([rest.rsplit(".", 1)[-1]] if rest and first in objects else [])
    return next((c for c in candidates if c in objects), None)


def events_by_object(types: list[str], related: dict[str, str], components: dict) -> dict[str, list[str]]:
    objects = {object_value(c, name) for name, c in components.items()}
    out: dict[str, list[str]] = {}
    for event_type in types:
        if (obj := event_object(event_type, related, objects)) is not None:
            out.setdefault(obj, []).append(event_type)
    return out


def build(source: tuple[dict, dict[str, list[str]]]) -> tuple[list[dict], dict[str, dict]]:
    """Every stream's declaration and schema, from a source (`load_sdk()`, `load_openapi(file)`)."""
    spec, events_by_object = source
    components = spec["components"]["schemas"]
    builder = SchemaBuilder(components)

    lists = {}
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op and (items := list_item_schemas(op)) and path not in EXCLUDED:
            lists[path] = (op, items)

    by_path_name = {p: stream_name(p) for p in lists}
    top_names = {p.removeprefix("/v1"): n for p, n in by_path_name.items() if "{" not in p}

    objects_by_name = {by_path_name[p]: tuple(object_value(components[i], i) for i in items)
                       for p, (_, items) in lists.items()}
    parents = {p: parent for p in lists if (parent := _parent(p, top_names))}
    # Events under a parent (`customer.tax_id.*`, `account.external_account.*`) belong to that
    # child list, not to another list of the same objects (`/v1/tax_ids`, the account's own tax
    # ids; customer sources, which can also be `account` objects).
    claimed = {by_path_name[p]: tuple(f"{o}." for o in objects_by_name[parent[0]]) for p, parent in parents.items()}

    specs = []
    schemas = {}
    for path, (op, items) in sorted(lists.items(), key=lambda kv: by_path_name[kv[0]]):
        name = by_path_name[path]
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        required = tuple(sorted(n for n, p in params.items() if p.get("required")))
        object_types = tuple(object_value(components[i], i) for i in items)
        entry: dict = {"name": name, "path": path, "object_types": object_types}

        if path in parents:
            entry["parent"], entry["parent_param"], entry["parent_via"] = parents[path]
        if path in PARENT_FIELDS:
            entry["parent_fields"] = PARENT_FIELDS[path]
        created = params.get("created")
        created_field = _created_field(items, components)
        if created and created_field:
            entry["created_filter"] = True
        if created_field:
            entry["created_field"] = created_field
        entry["query_params"] = tuple(sorted(params))
        if required:
            entry["required_params"] = required
        expandable = []
        for item in items:
            for field, prop in sorted(components[item].get("properties", {}).items()):
                if "x-expansionResources" in prop:
                    refs = [r["$ref"].rsplit("/", 1)[1] for r in prop["x-expansionResources"]["oneOf"]]
                    targets = {object_value(components[r], r) for r in refs}  # `deleted_x` is an x
                    stream = _stream_for_object(targets.pop(), lists, components) if len(targets) == 1 else None
                    expandable.append((field, stream))
        if expandable:
            entry["expandable"] = tuple(dict.fromkeys(expandable))
        # An event whose object is a union (`bank_account|card|source`) belongs to a stream
        # only if the stream's records can be every member of that union.
        not_ours = tuple(prefix for child, prefixes in claimed.items()
                         if child != name and set(objects_by_name[child]) & set(object_types)
                         for prefix in prefixes if prefix not in claimed.get(name, ()))
        event_types = sorted({
            t for union, types in events_by_object.items()
            if set(union.split("|")) <= set(object_types) for t in types if not t.startswith(not_ours)
        })
        if "parent" in entry:
            # A child's events name its parent (`customer.tax_id.*`, `customer.source.*`) or the
            # child's own object (`person.*`, `payment_method.*`); an event of the same objects
            # under another parent (`account.external_account.*` for a card) is not the child's.
            prefixes = tuple(f"{o}." for o in (*objects_by_name[entry["parent"]], *object_types))
            event_types = sorted({
                t for union, types in events_by_object.items()
                if set(union.split("|")) & set(object_types) for t in types
                if t.startswith(prefixes) and not t.startswith(not_ours)
            })
        if event_types:
            # A child's events are read with its parent's (engine: the parent is read again).
            entry["event_types"] = tuple(event_types)
            # `.deleted` means gone only for objects Stripe can return as `deleted: true`
            # (`customer.subscription.deleted` is a cancellation: the object stays).
            deleted = [t for t in event_types if t.endswith(".deleted")]
            if deleted and any(f"deleted_{i}" in components for i in items):
                entry["deleted_event"] = deleted[0]
            if len(event_types) > 20:
                raise SystemExit(f"{name}: more than 20 event types; Stripe's types[] takes 20")
        retrieve = _retrieve_path(path, spec["paths"])
        if retrieve:
            entry["retrieve_path"] = retrieve
        if "starting_after" not in params:
            entry["paginated"] = False
        if name in KEYS:
            entry["key_properties"] = KEYS[name]
        if name in OAUTH_UNREADABLE:
            entry["oauth_readable"] = False
        specs.append(entry)
        schemas[name] = _merged_schema(builder, items)

    for name, (path, object_type, rows_field, keys) in SINGLETONS.items():
        entry = {"name": name, "path": path, "object_types": (object_type,), "kind": "singleton",
                 "key_properties": keys}
        schema = _merged_schema(builder, ["balance"])
        if rows_field:
            entry["rows_field"] = rows_field
            schema = {**schema["properties"][rows_field]["items"], "type": ["object"]}
        specs.append(entry)
        schemas[name] = schema

    by_name = {s["name"]: s for s in specs}
    for entry in specs:
        if entry.get("parent"):
            embedded = None if entry["name"] in NOT_EMBEDDED else _embedded_field(entry, by_name, lists, components)
            if embedded:
                entry["embedded_field"] = embedded
            by_name[entry["parent"]].setdefault("children", []).append(entry["name"])
    for entry in specs:
        if "children" in entry:
            entry["children"] = tuple(sorted(entry["children"]))
    for schema in schemas.values():
        properties = schema["properties"]
        for key, value in TAP_FIELD_SCHEMAS.items():
            # ours replaces Stripe's `deleted` (only ever `true`, on deleted objects)
            properties[key] = value if key == "deleted" else properties.get(key, value)
    return specs, schemas


def generate(source: tuple[dict, dict[str, list[str]]], out: Path) -> list[str]:
    spec = source[0]
    specs, schemas = build(source)
    schema_dir = out / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    for stale in schema_dir.glob("*.json"):  # a list the source no longer has
        if stale.stem not in schemas:
            stale.unlink()
    written = []
    for name, schema in sorted(schemas.items()):
        target = schema_dir / f"{name}.json"
        target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        written.append(str(target))
    from tap_stripe.sensitive.classify import write_classification  # reviewed rules: tap_stripe.sensitive.rules

    write_classification(schema_dir, out / "sensitive_fields.json")
    written.append(str(out / "sensitive_fields.json"))
    table = out / "streams" / "generated.py"
    table.parent.mkdir(parents=True, exist_ok=True)
    excluded = {path: why for path, why in EXCLUDED.items() if path in spec["paths"]}
    table.write_text(_render_classes(specs, spec["info"]["version"], spec["info"].get("x-stripe-python"), excluded))
    written.append(str(table))
    return written


def _parent(path: str, top_names: dict[str, str]) -> tuple[str, str, str] | None:
    """(parent stream, its id's parameter, `path` or `query`) of a list under a parent."""
    placeholders = re.findall(r"\{(\w+)\}", path)
    if placeholders:
        parent_path = path[: path.index("{") - 1]
        return top_names[parent_path.removeprefix("/v1")], placeholders[0], "path"
    if path in QUERY_PARENTS:
        return (*QUERY_PARENTS[path], "query")
    return None


def _created_field(items: list[str], components: dict) -> str | None:
    props = components[items[0]].get("properties", {})
    if "created" in props:
        return "created"
    if "date" in props and props["date"].get("format") == "unix-time":
        return "date"  # invoice items: filtered on `created`, which the object calls `date`
    return None


def _stream_for_object(object_type: str, lists: dict, components: dict) -> str | None:
    for path, (_, items) in lists.items():
        if "{" in path:
            continue
        if any(object_value(components[i], i) == object_type for i in items):
            return stream_name(path)
    return None


def _retrieve_path(list_path: str, paths: dict) -> str | None:
    for candidate, ops in paths.items():
        if "get" not in ops or not candidate.startswith(list_path + "/{"):
            continue
        rest = candidate[len(list_path) + 1:]
        if re.fullmatch(r"\{\w+\}", rest):
            return list_path + "/{id}"
    return None


def _embedded_field(entry: dict, by_name: dict, lists: dict, components: dict) -> str | None:
    """The parent's field that embeds the first page of this list, if any."""
    parent = by_name[entry["parent"]]
    parent_items = lists[parent["path"]][1] if parent.get("kind", "list") == "list" else []
    child_items = set(lists[entry["path"]][1])
    for item in parent_items:
        for field, prop in components[item].get("properties", {}).items():
            target = prop
            if "anyOf" in prop and len(prop["anyOf"]) == 1:
                target = prop["anyOf"][0]
            if "$ref" in target:
                target = components[target["$ref"].rsplit("/", 1)[1]]
            data = target.get("properties", {}).get("data", {})
            refs = data.get("items", {})
            refs = [refs] if "$ref" in refs else refs.get("anyOf", [])
            if {r.get("$ref", "").rsplit("/", 1)[-1] for r in refs} & child_items and \
                    target.get("properties", {}).get("has_more"):
                return field
    return None


def _merged_schema(builder: SchemaBuilder, items: list[str]) -> dict:
    built = [builder.build(i) for i in items]
    if len(built) == 1:
        schema = built[0]
    else:  # polymorphic lists (bank accounts and cards): one table with every field
        schema = _merge_objects(built)[0]
    schema["type"] = ["object"]
    return schema


BASES = {"singleton": "SingletonStream", "child": "ChildStream", "created": "CreatedWindowStream",
         "full": "FullTableStream"}
# Attributes a kind's base class already sets.
IMPLIED = {"SingletonStream": {"kind"}, "CreatedWindowStream": {"created_filter"}}
ORDER = ["path", "object_types", "kind", "rows_field", "parent", "parent_param", "parent_via", "parent_fields",
         "embedded_field", "created_filter", "created_field", "query_params", "required_params", "expandable",
         "event_types", "deleted_event", "retrieve_path", "paginated", "key_properties", "oauth_readable", "children"]


def class_name(stream: str) -> str:
    return "".join(part.title() for part in stream.split("_")) + "Stream"


def _render_classes(specs: list[dict], api_version: str, sdk_version: str | None, excluded: dict) -> str:
    source = f"Stripe's Python SDK (stripe=={sdk_version})" if sdk_version else "an OpenAPI spec file"
    lines = [
        f"# GENERATED by scripts/generate.py from {source}; do not edit.",
        "# Regenerate with `make generate`; tests/test_generate.py fails on drift. A table's",
        "# project-specific choices (fixed list parameters, default expansions) are in overrides.py.",
        '"""Every Stripe table the tap reads, one class each, as Stripe\'s spec describes it."""',
        "",
        "from tap_stripe.streams.base import ChildStream, CreatedWindowStream, FullTableStream, SingletonStream",
        "",
        f'API_VERSION = "{api_version}"',
        f"GENERATED_FROM = {_py(f'stripe=={sdk_version}' if sdk_version else 'openapi')}",
    ]
    for entry in specs:
        kind = "singleton" if entry.get("kind") == "singleton" else "child" if entry.get("parent") else \
            "created" if entry.get("created_filter") else "full"
        base = BASES[kind]
        lines += ["", "", f"class {class_name(entry['name'])}({base}):",
                  f'    """Stripe `{entry["path"]}`."""', "", f"    name = {_py(entry['name'])}"]
        for key in ORDER:
            if key in entry and key not in IMPLIED.get(base, ()):
                lines.append(f"    {key} = {_py(entry[key])}")
    lines += ["", "", "EXCLUDED_LISTS = {"]
    for path, why in sorted(excluded.items()):
        lines.append(f"    {_py(path)}: {_py(why)},")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _py(value) -> str:
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--openapi", type=Path, metavar="FILE",
                        help="an OpenAPI spec file (spec3.json) instead of the installed stripe package")
    parser.add_argument("--stripe-dir", type=Path, metavar="DIR",
                        help="a stripe package folder (…/site-packages/stripe) instead of the installed one")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tap_stripe")
    args = parser.parse_args(argv)
    for given in (args.openapi, args.stripe_dir):
        if given and not given.exists():
            print(f"error: {given} not found", file=sys.stderr)
            return 2
    written = generate(load_openapi(args.openapi) if args.openapi else load_sdk(args.stripe_dir), args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
