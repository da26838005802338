#!/usr/bin/env python3
"""Generate the tap's stream table and JSON schemas from Stripe's OpenAPI spec.

Needs the project's shared folder (not part of the repo):

    python scripts/generate.py [--openapi-dir ../shared/stripe-openapi] [--out tap_stripe]

Reads `spec3.json` (API version 2023-08-16) and `event-types.json` from `--openapi-dir`,
and writes `<out>/streams/generated.py` and `<out>/schemas/<stream>.json`. Both are committed;
`tests/test_generate.py` regenerates into a temporary folder and fails on any drift.

The reviewed rules (which lists become streams, their names, parents, default
expansions, exclusions and why) are the tables at the top of this file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tap_stripe.records import TAP_FIELD_SCHEMAS  # noqa: E402  (the fields the tap adds)

DEFAULT_OPENAPI_DIR = Path(__file__).resolve().parents[2] / "shared" / "stripe-openapi"

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
    "/v1/customers/{customer}/subscriptions": "every subscription is in /v1/subscriptions?status=all (stream `subscriptions`)",
    "/v1/invoices/upcoming/lines": "a computed preview, not stored data",
    "/v1/credit_notes/preview/lines": "a computed preview, not stored data",
    "/v1/sources/{source}/source_transactions": "sources cannot be listed, so there are no parent ids to iterate",
    "/v1/tax/calculations/{calculation}/line_items": "tax calculations cannot be listed (and expire after 48 hours)",
    "/v1/tax/transactions/{transaction}/line_items": "tax transactions cannot be listed, so there are no parent ids to iterate",
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
}

# Lists that need a parent's id as a required query parameter: path -> (parent stream, param).
QUERY_PARENTS = {
    "/v1/subscription_items": ("subscriptions", "subscription"),
    "/v1/setup_attempts": ("setup_intents", "setup_intent"),
    "/v1/radar/value_list_items": ("radar_value_lists", "value_list"),
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

# Objects read whole each run: name -> (path, component, field whose list items are the
# rows, key). The balance is one record per run (its history); its available and pending
# amounts are also tables of their own, one row per currency (Striim's AvailableBalance
# and PendingBalance).
SINGLETONS = {
    "balance": ("/v1/balance", "balance", None, ()),
    "balance_available": ("/v1/balance", "balance_amount", "available", ("currency",)),
    "balance_pending": ("/v1/balance", "balance_amount", "pending", ("currency",)),
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
            return self.convert({**target, "nullable": node.get("nullable")}, depth + 1, chain + (name,), nullable)
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
            out["items"] = self.convert(node.get("items", {}), depth, chain, nullable=False) if node.get("items") else {}
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


def generate(openapi_dir: Path, out: Path) -> list[str]:
    spec = json.loads((openapi_dir / "spec3.json").read_text())
    event_catalog = json.loads((openapi_dir / "event-types.json").read_text())
    components = spec["components"]["schemas"]
    builder = SchemaBuilder(components)
    api_version = spec["info"]["version"]

    lists = {}
    for path, ops in spec["paths"].items():
        op = ops.get("get")
        if op and (items := list_item_schemas(op)) and path not in EXCLUDED:
            lists[path] = (op, items)

    by_path_name = {p: stream_name(p) for p in lists}
    top_names = {p.removeprefix("/v1"): n for p, n in by_path_name.items() if "{" not in p}

    events_by_object: dict[str, list[str]] = {}
    for event in event_catalog["events"]:
        if event.get("in_spec"):
            events_by_object.setdefault(event["object"], []).append(event["type"])

    objects_by_name = {by_path_name[p]: tuple(object_value(components[i], i) for i in items)
                       for p, (_, items) in lists.items()}

    specs = []
    schemas = {}
    for path, (op, items) in sorted(lists.items(), key=lambda kv: by_path_name[kv[0]]):
        name = by_path_name[path]
        params = {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}
        required = tuple(sorted(n for n, p in params.items() if p.get("required")))
        object_types = tuple(object_value(components[i], i) for i in items)
        entry: dict = {"name": name, "path": path, "object_types": object_types}

        placeholders = re.findall(r"\{(\w+)\}", path)
        if placeholders:
            parent_path = path[: path.index("{") - 1]
            entry["parent"] = top_names[parent_path.removeprefix("/v1")]
            entry["parent_param"] = placeholders[0]
            entry["parent_via"] = "path"
        elif path in QUERY_PARENTS:
            entry["parent"], entry["parent_param"] = QUERY_PARENTS[path]
            entry["parent_via"] = "query"
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
                    ref = prop["x-expansionResources"]["oneOf"][0]["$ref"].rsplit("/", 1)[1]
                    target = object_value(components[ref], ref)
                    expandable.append((field, _stream_for_object(target, lists, components)))
        if expandable:
            entry["expandable"] = tuple(dict.fromkeys(expandable))
        # An event whose object is a union (`bank_account|card|source`) belongs to a stream
        # only if the stream's records can be every member of that union.
        event_types = sorted({
            t for union, types in events_by_object.items()
            if set(union.split("|")) <= set(object_types) for t in types
        })
        if "parent" in entry:
            # A child's events name its parent (`customer.tax_id.*`, `customer.source.*`) or the
            # child's own object (`person.*`, `payment_method.*`); an event of the same objects
            # under another parent (`account.external_account.*` for a card) is not the child's.
            prefixes = tuple(f"{o}." for o in (*objects_by_name[entry["parent"]], *object_types))
            event_types = sorted({
                t for union, types in events_by_object.items()
                if set(union.split("|")) & set(object_types) for t in types if t.startswith(prefixes)
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

    for name, (path, component, rows_field, keys) in SINGLETONS.items():
        entry = {"name": name, "path": path, "object_types": (component,), "kind": "singleton",
                 "key_properties": keys}
        if rows_field:
            entry["rows_field"] = rows_field
        specs.append(entry)
        schemas[name] = _merged_schema(builder, [component])

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

    schema_dir = out / "schemas"
    schema_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(schemas.items()):
        properties = schema["properties"]
        for key, value in TAP_FIELD_SCHEMAS.items():
            # ours replaces Stripe's `deleted` (only ever `true`, on deleted objects)
            properties[key] = value if key == "deleted" else properties.get(key, value)
        target = schema_dir / f"{name}.json"
        target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
        written.append(str(target))
    from tap_stripe.sensitive import write_classification  # reviewed rules, see that module

    write_classification(schema_dir, out / "sensitive_fields.json")
    written.append(str(out / "sensitive_fields.json"))
    table = out / "streams" / "generated.py"
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text(_render_classes(specs, api_version))
    written.append(str(table))
    return written


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


def _render_classes(specs: list[dict], api_version: str) -> str:
    lines = [
        "# GENERATED by scripts/generate.py from Stripe's OpenAPI spec; do not edit.",
        "# Regenerate with `make generate`; tests/test_generate.py fails on drift. A table's",
        "# project-specific choices (fixed list parameters, default expansions) are in custom.py.",
        '"""Every Stripe table the tap reads, one class each, as Stripe\'s spec describes it."""',
        "",
        "from tap_stripe.streams.base import ChildStream, CreatedWindowStream, FullTableStream, SingletonStream",
        "",
        f'API_VERSION = "{api_version}"',
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
    for path, why in sorted(EXCLUDED.items()):
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
    parser.add_argument("--openapi-dir", type=Path, default=DEFAULT_OPENAPI_DIR)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tap_stripe")
    args = parser.parse_args(argv)
    if not (args.openapi_dir / "spec3.json").exists():
        print(f"error: {args.openapi_dir / 'spec3.json'} not found; pass --openapi-dir", file=sys.stderr)
        return 2
    written = generate(args.openapi_dir, args.out)
    print(f"wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
