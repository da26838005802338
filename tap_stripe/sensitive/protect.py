"""Protection in flight: the `sensitive_data` setting checked (`validate_policy`) and compiled
per stream (`Protector`) into what a run does to each record and schema.

`sensitive_data` = `{"categories": {category: policy}, "fields": {"<stream>.<path>": policy}}`
(field rules win), with policies `keep` (default) | `hash` | `mask` | `drop`, plus the secret
`sensitive_hash_key`. `Protector.from_config` compiles it, per stream, into a trie of the paths
whose policy is not `keep`; `Protector.record` walks only that trie and `Protector.schema`
rewrites the schema to match (dropped fields removed; hashed and masked ones become
`["string","null"]`). Below a record's top level nothing is changed in place: the nested
objects on the paths a policy changes are copied (copy-on-write), since records share them (a
child record's fields are the objects embedded in its parent) and each must be protected
exactly once. `hash` = `"h1:" + hex(HMAC-SHA256(key, value))`: the same value gives the same
hash in every stream and run, so hashed emails still join; an email is trimmed and lowercased
first. Values that are not strings are hashed or masked on their string form (objects on their
canonical JSON); nulls stay null.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from tap_stripe.output.records import mapped
from tap_stripe.sensitive.classify import is_leaf, path_segments, schema_types
from tap_stripe.sensitive.rules import CATEGORIES, POLICIES

# ---------------------------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------------------------


def validate_policy(config: Mapping[str, Any], streams: Collection[str] | None = None) -> None:
    """Raise ValueError (one line) for a bad `sensitive_data` / `sensitive_hash_key` setting;
    given `streams` (the stream names, or a classification keyed by them), a field rule must
    name one of them."""
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
        if streams is not None and stream not in streams:
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
        node, segs = trie, path_segments(path)
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
                leaf = next((s for s in reversed(path_segments(path)) if s not in ("[]", "*")), "")
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
            for holder, key, owner in _schema_slots(out, path_segments(path)):
                if policy == "drop":
                    del holder[key]
                    if isinstance(owner.get("required"), list) and key in owner["required"]:
                        owner["required"].remove(key)
                elif schema_types(holder[key]) & {"array"} and is_leaf(holder[key]):
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
