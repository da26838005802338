"""Sensitive data: a declarative, deterministic classification of every field, and its protection.

One mechanism, three uses:

1. **Classification.** `classify_schema` walks a stream's JSON Schema (nested objects, array
   items `[]`, free-form object values `*`, and the object member of expandable `anyOf`
   fields, whose path stays unchanged) and names each field's category with the reviewed
   rules in the tables below; nothing else decides. `write_classification` stores the result
   for all streams in `tap_stripe/sensitive_fields.json` (`{stream: {path: category}}`), which
   `tests/test_sensitive.py` keeps in sync with the schemas. Paths are dotted from the record
   root: `email`, `billing_details.address.line1`, `lines.data[].description`, `metadata.*`.
2. **Discovery.** `catalog_metadata` turns a stream's classification into Singer metadata:
   `{"stripe-sensitive": <category>}` at each classified field's breadcrumb, and
   `{"stripe-sensitive-nested": [categories]}` on a top-level property that holds some.
3. **Protection in flight.** Setting `sensitive_data` =
   `{"categories": {category: policy}, "fields": {"<stream>.<path>": policy}}` (field rules win)
   with policies `keep` (default) | `hash` | `mask` | `drop`, plus the secret `sensitive_hash_key`.
   `Protector.from_config` compiles it, per stream, into a trie of the paths whose policy is
   not `keep`; `Protector.record` walks only that trie and `Protector.schema` rewrites the
   schema to match (dropped fields removed; hashed and masked ones become `["string","null"]`).
   Below a record's top level nothing is changed in place: the nested objects on the paths a
   policy changes are copied (copy-on-write), since records share them (a child record's
   fields are the objects embedded in its parent) and each must be protected exactly once.
   `hash` = `"h1:" + hex(HMAC-SHA256(key, value))`: the same value gives the same hash in every
   stream and run, so hashed emails still join; an email is trimmed and lowercased first.
   Values that are not strings are hashed or masked on their string form (objects on their
   canonical JSON); nulls stay null.

A separate scanner (`scan_records`, `scan_report`, `format_report`) samples records, looks
for values that *look* personal (emails, phones, IPs, Luhn-valid card numbers) and says
whether the classification covers the field they were found in.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from tap_stripe.records import mapped

# ---------------------------------------------------------------------------------------------
# Reviewed rules
# ---------------------------------------------------------------------------------------------

CATEGORIES = ("contact", "address", "government_id", "payment_instrument", "network", "free_text")
POLICIES = ("keep", "hash", "mask", "drop")
METADATA_KEY = "stripe-sensitive"
NESTED_METADATA_KEY = "stripe-sensitive-nested"

# Ordered (pattern, category) rules; the first whose pattern matches the END of a field's path
# wins; `None` means "not sensitive" (a reviewed exception). Patterns are tuples of segments,
# matched with fnmatch against the path's segments without `[]`. Only leaves are classified:
# scalars, arrays of scalars, free-form values (`*`) and objects the schema leaves opaque.
# Expandable `anyOf` fields themselves (an id or an object) are never classified: an id is
# not personal data; the expanded object's fields are classified instead.
#
# Notable decisions:
# - `country` stays non-sensitive everywhere (needed for tax and analytics, low identifying power);
#   address categories cover line1/line2/city/state/postal_code/town.
# - Businesses are not persons: merchant data on issuing transactions, `company.name`,
#   `business_profile.name`, bank addresses (`bank_address_*`), `bank_name`, `bic`, bank codes.
# - `statement_descriptor*`, product/price/coupon names, `nickname`, `display_name`, invoice
#   numbers, tracking numbers, `client_reference_id`: set by the merchant, not personal.
# - Every `description` is free text (merchants paste customer names and emails into them).
# - `dob`, `gender`, `nationality` and identity-document fields count as `government_id`.
# - `last4`-style fields are classified `payment_instrument`; `mask` keeps them as they are.
RULES: tuple[tuple[tuple[str, ...], str | None], ...] = (
    # reviewed exceptions first
    (("merchant_data", "*"), None),
    (("company", "name*"), None),
    (("options", "*"), None),  # identity verification options, not outputs
    (("business_profile", "name"), None),
    (("*", "country"), None),
    # network
    (("ip",), "network"),
    (("ip_address",), "network"),
    (("client_ip",), "network"),
    (("customer_purchase_ip",), "network"),
    (("user_agent",), "network"),
    (("ip_address_location", "*"), "network"),
    (("tos_acceptance",), "network"),  # opaque acceptance objects: ip, user agent, date
    (("user_terms_acceptance",), "network"),
    # address: parts of any object whose name contains "address", plus flattened forms
    (("*address*", "line1"), "address"),
    (("*address*", "line2"), "address"),
    (("*address*", "city"), "address"),
    (("*address*", "state"), "address"),
    (("*address*", "postal_code"), "address"),
    (("*address*", "town"), "address"),
    (("*address_line1",), "address"),  # card address_line1, report customer_address_line1, …
    (("*address_line2",), "address"),
    (("*address_city",), "address"),
    (("*address_state",), "address"),
    (("*address_postal_code",), "address"),
    (("address_zip",), "address"),
    (("billing_zip",), "address"),
    # whole addresses: strings (dispute evidence) or objects the schema leaves opaque
    (("address",), "address"),
    (("billing_address",), "address"),
    (("shipping_address",), "address"),
    (("customer_address",), "address"),
    (("registered_address",), "address"),
    (("verified_address",), "address"),
    (("shipping",), "address"),
    (("shipping_details",), "address"),
    (("customer_shipping",), "address"),
    # government_id
    (("tax_ids", "value"), "government_id"),
    (("tax_ids", "data", "value"), "government_id"),
    (("customer_tax_ids", "value"), "government_id"),
    (("account_tax_ids", "value"), "government_id"),
    (("document", "number"), "government_id"),
    (("tax_id",), "government_id"),
    (("id_number",), "government_id"),
    (("ssn_last_4",), "government_id"),
    (("vat",), "government_id"),
    (("vat_id",), "government_id"),
    (("dob",), "government_id"),  # opaque
    (("dob", "*"), "government_id"),
    (("gender",), "government_id"),
    (("nationality",), "government_id"),
    # payment_instrument
    (("fingerprint",), "payment_instrument"),
    (("last4",), "payment_instrument"),
    (("dynamic_last4",), "payment_instrument"),
    (("iban_last4",), "payment_instrument"),
    (("account_number_last4",), "payment_instrument"),
    (("exp_month",), "payment_instrument"),
    (("exp_year",), "payment_instrument"),
    (("card", "number"), "payment_instrument"),
    (("cvc",), "payment_instrument"),
    (("account_number",), "payment_instrument"),
    (("routing_number",), "payment_instrument"),
    (("refund_routing_number",), "payment_instrument"),
    (("sort_code",), "payment_instrument"),
    (("bsb_number",), "payment_instrument"),
    (("iban",), "payment_instrument"),
    (("refund_iban",), "payment_instrument"),
    (("clabe",), "payment_instrument"),
    (("account_holder_name",), "payment_instrument"),
    (("refund_account_holder_name",), "payment_instrument"),
    (("buyer_id",), "payment_instrument"),
    (("payer_id",), "payment_instrument"),
    (("cashtag",), "payment_instrument"),
    # contact
    (("*email",), "contact"),  # email, receipt_email, customer_email, payer_email, verified_email...
    (("customer_email_address",), "contact"),
    (("email_sent_to",), "contact"),
    (("*phone",), "contact"),  # phone, customer_phone, support_phone, verified_phone
    (("phone_number",), "contact"),
    (("customer_name",), "contact"),
    (("cardholder_name",), "contact"),
    (("payer_name",), "contact"),
    (("sender_name",), "contact"),
    (("passenger_name",), "contact"),
    (("verified_name",), "contact"),
    (("first_name*",), "contact"),
    (("last_name*",), "contact"),
    (("maiden_name",), "contact"),
    (("name_kana",), "contact"),
    (("name_kanji",), "contact"),
    (("full_name_aliases",), "contact"),
    (("shipping_first_name",), "contact"),
    (("shipping_last_name",), "contact"),
    (("billing_details",), "contact"),  # opaque person records
    (("customer_details",), "contact"),
    (("individual",), "contact"),
    (("owner",), "contact"),
    # free_text
    (("description",), "free_text"),
    (("metadata", "*"), "free_text"),
    (("footer",), "free_text"),
    (("memo",), "free_text"),
    (("notes",), "free_text"),
    (("comment",), "free_text"),
    (("explanation",), "free_text"),
    (("*_explanation",), "free_text"),
    (("cancellation_rebuttal",), "free_text"),
    (("uncategorized_text",), "free_text"),
    (("access_activity_log",), "free_text"),
    (("custom_fields", "value"), "free_text"),
    (("custom_fields", "text", "value"), "free_text"),
    (("custom_fields", "numeric", "value"), "free_text"),
)

# `name` is ambiguous (products, coupons, tax codes... have one): it is a person's name
# only inside an object that also holds contact or address data, or in these containers.
PERSON_NAME_HINTS = frozenset({"email", "phone", "address", "address_line1", "billing_address"})
PERSON_NAME_CONTAINERS = frozenset({"card", "cardholder", "owner", "shipping", "three_d_secure"})

# Root fields whose meaning depends on what the stream's object is.
STREAM_RULES: dict[tuple[str, str], str] = {
    ("customer_tax_ids", "value"): "government_id",
    # a Radar list item is an email, IP, card fingerprint... whatever the list holds
    ("radar_value_list_items", "value"): "free_text",
}

_SCALARS = frozenset({"string", "integer", "number"})


# ---------------------------------------------------------------------------------------------
# Classification
# ---------------------------------------------------------------------------------------------


def _types(node: Mapping) -> set[str]:
    t = node.get("type") or []
    return {t} if isinstance(t, str) else set(t)


def _is_leaf(node: Mapping) -> bool:
    """Scalar, array of scalars, or an object the schema leaves opaque (never an `anyOf`)."""
    if "anyOf" in node:
        return False
    types = _types(node)
    if types & _SCALARS:
        return True
    if "array" in types:
        items = node.get("items") or {}
        return isinstance(items, Mapping) and "anyOf" not in items and bool(_types(items) & _SCALARS)
    return "object" in types and "properties" not in node and "additionalProperties" not in node


def _rule_category(segments: list[str], siblings: Iterable[str], stream: str | None) -> str | None:
    if stream is not None and len(segments) == 1 and (stream, segments[0]) in STREAM_RULES:
        return STREAM_RULES[(stream, segments[0])]
    if segments[-1] == "name":
        parent = segments[-2] if len(segments) > 1 else ""
        if parent in ("company", "business_profile", "merchant_data"):
            return None
        if parent in PERSON_NAME_CONTAINERS or PERSON_NAME_HINTS & set(siblings):
            return "contact"
        return None
    for pattern, category in RULES:
        n = len(pattern)
        if n <= len(segments) and all(map(fnmatchcase, segments[-n:], pattern)):
            return category
    return None


def classify_schema(schema: dict, stream: str | None = None) -> dict[str, str]:
    """`{path: category}` for every sensitive field of a stream's schema (see RULES)."""
    found: dict[str, str] = {}

    def walk(node: Mapping, path: str, segments: list[str]) -> None:
        for member in node.get("anyOf") or ():
            if isinstance(member, Mapping) and "object" in _types(member):
                walk(member, path, segments)
        props = node.get("properties") or {}
        for key, child in props.items():
            visit(child, f"{path}.{key}" if path else key, [*segments, key], props)
        items = node.get("items")
        if isinstance(items, Mapping) and not _is_leaf(node):
            walk(items, path + "[]", segments)
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping):
            visit(extra, f"{path}.*", [*segments, "*"], {})

    def visit(node: Mapping, path: str, segments: list[str], siblings: Iterable[str]) -> None:
        if not isinstance(node, Mapping):
            return
        if _is_leaf(node):
            category = _rule_category(segments, siblings, stream)
            if category is not None:
                found[path] = category
        else:
            walk(node, path, segments)

    walk(schema, "", [])
    return dict(sorted(found.items()))


def write_classification(schemas_dir: str | Path, out_path: str | Path) -> dict[str, dict[str, str]]:
    """Classify every stream the tap emits — each `<stream>.json` in `schemas_dir` and the
    report streams, whose schemas `reports.report_schema` builds (an itemized report with
    every column `report_columns` may ask for) — and write `{stream: {path: category}}`."""
    from tap_stripe.reports import COLUMN_KINDS, REPORT_STREAMS, report_schema

    schemas = {f.stem: json.loads(f.read_text()) for f in Path(schemas_dir).glob("*.json")}
    schemas.update((spec.name, report_schema(spec, list(COLUMN_KINDS) if spec.itemized else None))
                   for spec in REPORT_STREAMS)
    result = {name: classify_schema(schema, stream=name) for name, schema in sorted(schemas.items())}
    Path(out_path).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


CLASSIFICATION_FILE = Path(__file__).with_name("sensitive_fields.json")


@functools.cache
def load_classification(path: str | Path = CLASSIFICATION_FILE) -> dict[str, dict[str, str]]:
    """The classification file, read once per process: callers only read it."""
    return json.loads(Path(path).read_text())


def _segments(path: str) -> list[str]:
    """`lines.data[].description` -> ["lines", "data", "[]", "description"]."""
    out: list[str] = []
    for part in path.split("."):
        n = 0
        while part.endswith("[]"):
            part, n = part[:-2], n + 1
        out.append(part)
        out.extend(["[]"] * n)
    return out


def catalog_metadata(classification_for_stream: Mapping[str, str]) -> list[tuple[tuple[str, ...], dict]]:
    """Singer metadata entries marking each sensitive field (and top-level holders of some)."""
    entries: list[tuple[tuple[str, ...], dict]] = []
    nested: dict[str, set[str]] = {}
    for path, category in sorted(classification_for_stream.items()):
        crumb: list[str] = []
        for seg in _segments(path):
            crumb += ["items"] if seg == "[]" else ["additionalProperties"] if seg == "*" else ["properties", seg]
        entries.append((tuple(crumb), {METADATA_KEY: category}))
        top = _segments(path)[0]
        if top != path:
            nested.setdefault(top, set()).add(category)
    for top, cats in sorted(nested.items()):
        if top not in classification_for_stream:
            entries.append((("properties", top), {NESTED_METADATA_KEY: sorted(cats)}))
    return entries


# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


def validate_policy(config: Mapping[str, Any], classification: Mapping[str, Any] | None = None) -> None:
    """Raise ValueError (one line) for a bad `sensitive_data` / `sensitive_hash_key` setting."""
    setting = config.get("sensitive_data")
    if setting is None:
        return
    if not isinstance(setting, Mapping):
        raise ValueError("sensitive_data must be an object with 'categories' and/or 'fields'")
    unknown = set(setting) - {"categories", "fields"}
    if unknown:
        raise ValueError(f"sensitive_data: unknown key(s) {sorted(unknown)}; expected 'categories', 'fields'")
    categories = setting.get("categories") or {}
    fields = setting.get("fields") or {}
    for name, policy in categories.items():
        if name not in CATEGORIES:
            raise ValueError(f"sensitive_data.categories: unknown category {name!r}; "
                             f"expected one of {', '.join(CATEGORIES)}")
        if policy not in POLICIES:
            raise ValueError(f"sensitive_data.categories.{name}: unknown policy {policy!r}; "
                             f"expected one of {', '.join(POLICIES)}")
    for name, policy in fields.items():
        stream, dot, path = name.partition(".")
        if not dot or not path:
            raise ValueError(f"sensitive_data.fields: {name!r} must be '<stream>.<path>'")
        if classification is not None and stream not in classification:
            raise ValueError(f"sensitive_data.fields: unknown stream {stream!r} in {name!r}")
        if policy not in POLICIES:
            raise ValueError(f"sensitive_data.fields.{name}: unknown policy {policy!r}; "
                             f"expected one of {', '.join(POLICIES)}")
    uses_hash = "hash" in categories.values() or "hash" in fields.values()
    if uses_hash and not config.get("sensitive_hash_key"):
        raise ValueError("sensitive_hash_key is required when sensitive_data uses the 'hash' policy")


# ---------------------------------------------------------------------------------------------
# Masks and hash
# ---------------------------------------------------------------------------------------------

_EMAIL_FULL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
KEPT_BY_MASK = frozenset({"last4", "dynamic_last4", "iban_last4", "account_number_last4"})


def mask_email(s: str) -> str:
    local, _, domain = s.strip().rpartition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(s: str) -> str:
    """Every digit but the last two becomes `*`; separators and `+` keep the shape."""
    out, kept = [], 0
    for ch in reversed(s):
        if ch.isdigit():
            out.append(ch if kept < 2 else "*")
            kept += 1
        else:
            out.append(ch)
    return "".join(reversed(out))


def mask_name(s: str) -> str:
    return " ".join(w[:1] + "*" * (len(w) - 1) for w in s.split())


def mask_ip(s: str) -> str:
    try:
        ip = ipaddress.ip_address(s.strip())
    except ValueError:
        return "***"
    if ip.version == 4:
        return str(ip).rsplit(".", 1)[0] + ".*"
    return ":".join(ip.exploded.split(":")[:3]) + ":*"


def _mask_for(category: str | None, leaf: str) -> Callable[[str], str]:
    if category == "contact":
        if "phone" in leaf:
            return mask_phone
        return lambda s: mask_email(s) if _EMAIL_FULL.fullmatch(s.strip()) else mask_name(s)
    if category == "payment_instrument":
        if leaf in KEPT_BY_MASK:
            return lambda s: s
        if leaf.endswith("_name"):
            return mask_name
        return lambda s: "*" * len(s)
    if category == "address" and leaf in ("postal_code", "address_zip", "billing_zip"):
        return lambda s: s[:2] + "*" * max(len(s) - 2, 1)
    if category == "government_id":
        return lambda s: "*" * len(s)
    if category == "network" and leaf in ("ip", "ip_address", "client_ip", "customer_purchase_ip"):
        return mask_ip
    if category is None:  # a field rule on an unclassified field: go by the value's shape
        return lambda s: mask_email(s) if _EMAIL_FULL.fullmatch(s.strip()) else "***"
    return lambda s: "***"


def _hasher(key: str) -> Callable[[str], str]:
    base = hmac.new(key.encode(), digestmod=hashlib.sha256)

    def hash_value(s: str) -> str:
        if "@" in s:
            t = s.strip()
            if _EMAIL_FULL.fullmatch(t):
                s = t.lower()
        h = base.copy()
        h.update(s.encode())
        return "h1:" + h.hexdigest()

    return hash_value


def _on_values(fn: Callable[[str], str]) -> Callable[[Any], Any]:
    """Apply `fn` to a value's string form; None stays None; lists item by item."""

    def apply(v: Any) -> Any:
        if v is None:
            return None
        if type(v) is str:
            return fn(v)
        if type(v) is list:
            return [apply(x) for x in v]
        if isinstance(v, (dict, list)):
            return fn(json.dumps(v, sort_keys=True, separators=(",", ":"), default=str))
        return fn(str(v))

    return apply


_DROP = object()


# ---------------------------------------------------------------------------------------------
# Protector
# ---------------------------------------------------------------------------------------------

# A compiled plan is a trie: {segment: (action, children)}; action is None (descend),
# _DROP, or a value transform. Segments: property name, "[]" (array items), "*" (all values).
Trie = dict


def _protected(value: Any, node: Trie) -> Any:
    """`value` with the policy applied, leaving `value` and everything in it unchanged: each
    dict or list on the way to a change is copied once, the rest stays shared; `value`
    itself when nothing changes."""
    if type(value) is dict:
        out = _protect_into(value, node, None)
        return value if out is None else out
    if type(value) is list:
        entry = node.get("[]")
        if entry is None:
            return value
        children = entry[1]
        return mapped(value, lambda item: _protected(item, children))
    return value


def _protect_into(value: dict, node: Trie, out: dict | None) -> dict | None:
    """Apply the trie to dict `value`, writing into `out`: `value` itself for a record's own
    top-level dict, or None below it, where a copy of `value` is made on the first write
    (copy-on-write). Returns `out`, still None when nothing changed. Below the top level
    nothing is changed in place, because nested objects may be shared with other records."""
    for key, (action, children) in node.items():
        current = value if out is None else out
        if key == "*":
            keys: Iterable[str] = list(current)
        elif key in current:
            keys = (key,)
        else:
            continue
        for k in keys:
            if action is _DROP:
                if out is None:
                    out = dict(value)
                del out[k]
                continue
            old = (value if out is None else out)[k]
            if action is None:  # descend
                if old is None:
                    continue
                new = _protected(old, children)
            else:
                new = action(old)
            if new is not old:
                if out is None:
                    out = dict(value)
                out[k] = new
    return out


def _schema_slots(node: dict, segments: list[str]) -> list[tuple[dict, Any, dict]]:
    """(holder, key, owner) for every schema node at `segments` (expandable anyOf included)."""
    current = [node]
    slots: list[tuple[dict, Any, dict]] = []
    for seg in segments:
        expanded: list[dict] = []
        stack = list(current)
        while stack:
            n = stack.pop()
            if not isinstance(n, dict):
                continue
            expanded.append(n)
            stack.extend(m for m in n.get("anyOf") or () if isinstance(m, dict))
        slots = []
        for n in expanded:
            if seg == "[]" and isinstance(n.get("items"), dict):
                slots.append((n, "items", n))
            elif seg == "*" and isinstance(n.get("additionalProperties"), dict):
                slots.append((n, "additionalProperties", n))
            elif seg in (n.get("properties") or {}):
                slots.append((n["properties"], seg, n))
        current = [holder[key] for holder, key, _ in slots]
    return slots


def _trie(actions: Mapping[str, Callable | object]) -> Trie:
    """The trie of one stream's actions by path (shortest paths first: an ancestor dropped or
    transformed as a whole leaves no entry below it)."""
    trie: Trie = {}
    for path, action in sorted(actions.items(), key=lambda kv: len(kv[0])):
        node, segs = trie, _segments(path)
        for seg in segs[:-1]:
            parent_action, node = node.setdefault(seg, (None, {}))
            if parent_action is not None:
                break  # an ancestor is already dropped/transformed as a whole
        else:
            node[segs[-1]] = (action, {})
    return trie


class Protector:
    """Applies a compiled `sensitive_data` policy to schemas and records of each stream.

    Built by `from_config`, a stream's policy is compiled when the stream is first asked about
    (`policies`, `schema`, `record`): a run compiles those of the streams it syncs."""

    def __init__(self, plans: dict[str, dict[str, str]], transforms: dict[str, dict[str, Callable | object]],
                 compile_stream: Callable[[str], tuple[dict[str, str], dict[str, Callable | object]]] | None = None):
        # {stream: ({path: policy} (non-keep only), trie)}; streams not in it are compiled by
        # `compile_stream` (none: nothing to change)
        self._streams: dict[str, tuple[dict[str, str], Trie]] = {
            stream: (dict(plans.get(stream, {})), _trie(transforms.get(stream, {})))
            for stream in set(plans) | set(transforms)}
        self._compile = compile_stream

    def _stream(self, stream: str) -> tuple[dict[str, str], Trie]:
        compiled = self._streams.get(stream)
        if compiled is None:
            plan, actions = self._compile(stream) if self._compile is not None else ({}, {})
            compiled = self._streams.setdefault(stream, (plan, _trie(actions)))
        return compiled

    @classmethod
    def from_config(
        cls,
        sensitive_data: Mapping | None,
        hash_key: str | None,
        classification: Mapping[str, Mapping[str, str]],
    ) -> Protector | None:
        """The policy, or None when every field is kept (the hot path costs nothing)."""
        validate_policy({"sensitive_data": sensitive_data, "sensitive_hash_key": hash_key}, classification)
        if not sensitive_data:
            return None
        categories = sensitive_data.get("categories") or {}
        fields = sensitive_data.get("fields") or {}
        hash_value = _hasher(hash_key) if hash_key else None

        def compile_stream(stream: str) -> tuple[dict[str, str], dict[str, Callable | object]]:
            plan: dict[str, str] = {}
            actions: dict[str, Callable | object] = {}
            paths = classification.get(stream)
            if paths is None:
                return plan, actions
            wanted: dict[str, tuple[Any, str | None]] = {path: (categories.get(cat, "keep"), cat)
                                                         for path, cat in paths.items()}
            for name, policy in fields.items():
                s, _, path = name.partition(".")
                if s == stream:
                    wanted[path] = (policy, paths.get(path))
            for path, (policy, category) in wanted.items():
                if policy == "keep":
                    continue
                plan[path] = policy
                leaf = next((s for s in reversed(_segments(path)) if s not in ("[]", "*")), "")
                if policy == "drop":
                    action: Callable | object = _DROP
                elif policy == "hash":
                    action = _on_values(hash_value)  # type: ignore[arg-type]
                else:
                    action = _on_values(_mask_for(category, leaf))
                actions[path] = action
            return plan, actions

        # Some field of some stream changes: a field rule that is not `keep` (its stream is
        # classified: `validate_policy`), or a category policy that is not, for a category
        # the classification uses.
        changed = {cat for cat, policy in categories.items() if policy != "keep"}
        if not any(policy != "keep" for policy in fields.values()) and not (
                changed and any(changed.intersection(paths.values()) for paths in classification.values())):
            return None
        return cls({}, {}, compile_stream)

    def policies(self, stream: str) -> dict[str, str]:
        """`{path: policy}` of the fields this protector changes in `stream`."""
        return dict(self._stream(stream)[0])

    def schema(self, stream: str, schema: dict) -> dict:
        """A new schema: dropped fields removed, hashed/masked ones typed `["string","null"]`."""
        out = copy.deepcopy(schema)
        for path, policy in sorted(self._stream(stream)[0].items()):
            for holder, key, owner in _schema_slots(out, _segments(path)):
                if policy == "drop":
                    del holder[key]
                    if isinstance(owner.get("required"), list) and key in owner["required"]:
                        owner["required"].remove(key)
                elif _types(holder[key]) & {"array"} and _is_leaf(holder[key]):
                    holder[key] = {"type": ["array", "null"], "items": {"type": ["string", "null"]}}
                else:
                    holder[key] = {"type": ["string", "null"]}
        return out

    def record(self, stream: str, record: dict) -> dict:
        """Apply the policy to a record; returns it.

        Only the record's own top-level dict is changed in place: every record has its own (a
        child record is a shallow copy of the object embedded in its parent), and nothing else
        may read it meanwhile (child lists are read from a parent's copy, not its record).
        Nothing below it is ever changed: a nested dict or list on the path to a change is
        replaced, in the record, by a changed copy (copy-on-write), because nested objects
        are shared — a `subscription_items` record's `metadata` is the very dict inside its
        parent's `items.data[]`, and each record must get its own stream's policy, once.
        """
        trie = self._stream(stream)[1]
        if trie:
            _protect_into(record, trie, record)
        return record


# ---------------------------------------------------------------------------------------------
# Scanner
# ---------------------------------------------------------------------------------------------

# Removed from text before detection, so they cannot look like phones or cards.
_NOISE = re.compile(
    r"https?://[^\s]*stripe\.com[^\s]*"  # Stripe URLs
    r"|\b[a-z][a-z0-9]{0,15}_[A-Za-z0-9_]{6,}\b"  # Stripe ids: ch_..., cus_..., pi_..._secret_...
    r"|\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"  # ISO dates
)
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# + and 8-15 digits (E.164, separators allowed), or a grouped national format like
# (415) 555-0142, 415-555-0142, 020 7946 0958. A bare run of digits (amounts, unix times,
# ids) is never a phone.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d[\d\s().-]{6,18}\d"
    r"|\(\d{2,5}\)[\s.-]?\d{2,4}[\s.-]?\d{2,5}"
    r"|\d{2,5}[\s.-]\d{2,4}[\s.-]\d{2,5})(?![\w])"
)
_CARD = re.compile(r"(?<![\w])[2-6]\d{3}(?:[ -]?\d){9,15}(?![\w])")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def detect(text: str) -> list[tuple[str, str]]:
    """[(kind, match)] of personal-looking values in a string: email, phone, ip, card."""
    found: list[tuple[str, str]] = [("email", m.group()) for m in _EMAIL.finditer(text)]
    text = _NOISE.sub(" ", _EMAIL.sub(" ", text))
    for m in _IPV4.finditer(text):
        if all(int(p) <= 255 for p in m.group().split(".")):
            found.append(("ip", m.group()))
    for m in _IPV6.finditer(text):
        try:
            if m.group().count(":") >= 2 and ipaddress.IPv6Address(m.group()) and any(c.isalnum() for c in m.group()):
                found.append(("ip", m.group()))
        except ValueError:
            pass
    text = _IPV6.sub(" ", _IPV4.sub(" ", text))
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _luhn(digits):
            found.append(("card", m.group()))
    text = _CARD.sub(" ", text)
    for m in _PHONE.finditer(text):
        n = sum(c.isdigit() for c in m.group())
        if (8 if m.group().startswith("+") else 9) <= n <= 15:
            found.append(("phone", m.group().strip()))
    return found


def _strings(value: Any, path: str, parent_key: str | None) -> Iterable[tuple[str, str]]:
    if type(value) is str:
        yield path, value
    elif type(value) is dict:
        free_form = parent_key == "metadata"
        for k, v in value.items():
            yield from _strings(v, f"{path}.{'*' if free_form else k}" if path else k, k)
    elif type(value) is list:
        for v in value:
            yield from _strings(v, path + "[]", parent_key)


def _redact(kind: str, s: str) -> str:
    return {"email": mask_email, "phone": mask_phone, "ip": mask_ip}.get(kind, lambda v: "*" * len(v))(s)


def scan_records(
    stream: str,
    records: Iterable[Mapping],
    classification: Mapping[str, Mapping[str, str]],
    sample_size: int = 1000,
) -> list[dict]:
    """Findings for up to `sample_size` records of `stream`, one per (path, kind).

    `classification` is the `{stream: {path: category}}` map. A finding is
    `{"stream", "path", "kind", "count", "covered", "category", "example"}`; the example is masked.
    """
    known = classification.get(stream, {})
    rows: dict[tuple[str, str], dict] = {}
    for i, record in enumerate(records):
        if i >= sample_size:
            break
        for path, text in _strings(record, "", None):
            for kind, match in detect(text):
                row = rows.get((path, kind))
                if row is None:
                    category = known.get(path)
                    rows[(path, kind)] = row = {
                        "stream": stream, "path": path, "kind": kind, "count": 0,
                        "covered": category is not None, "category": category, "example": _redact(kind, match),
                    }
                row["count"] += 1
    return sorted(rows.values(), key=lambda r: (r["covered"], r["path"], r["kind"]))


def scan_report(findings_by_stream: Mapping[str, list[dict]]) -> dict:
    """`{"findings": [...uncovered first], "uncovered": n, "covered": n, "streams": [...]}`."""
    findings = [f for rows in findings_by_stream.values() for f in rows]
    findings.sort(key=lambda r: (r["covered"], r["stream"], r["path"], r["kind"]))
    return {
        "streams": sorted(findings_by_stream),
        "covered": sum(f["covered"] for f in findings),
        "uncovered": sum(not f["covered"] for f in findings),
        "findings": findings,
    }


def format_report(report: Mapping) -> str:
    """A plain-text table, uncovered fields first."""
    header = ("stream", "path", "kind", "count", "covered", "category", "example")
    rows = [header] + [
        (f["stream"], f["path"], f["kind"], str(f["count"]), "yes" if f["covered"] else "NO", f["category"] or "-",
         f["example"])
        for f in report["findings"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(
        f"{len(report['streams'])} stream(s) scanned; {report['uncovered']} uncovered and "
        f"{report['covered']} covered field(s) hold personal-looking values"
    )
    return "\n".join(lines)
