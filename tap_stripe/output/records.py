"""Turning a Stripe object into the record the tap emits, cheaply.

`RecordShaper` is compiled once per stream from its generated schema. Per record it:
- converts unix-time integers to RFC 3339 UTC strings, walking only the paths of the
  schema that hold `date-time` fields (nested objects, arrays and expanded objects too);
- drops top-level keys the schema does not know (newer API versions add fields), or, with
  schema evolution, leaves them for `tap_stripe.output.evolution` to add to the schema;
- adds `_account_id` and `_updated_at`.

Everything else is already JSON-typed the way the schema says, so no generic per-field
conformance runs. Only a record's own top-level dict is changed in place; nested objects,
which records share (a child record is a shallow copy of an object embedded in its parent),
are copied where a time in them is converted, never changed.
"""

from __future__ import annotations

import copy
import time
from functools import lru_cache
from typing import Any

# Fields the tap adds to every record, and their schemas (scripts/generate.py writes them
# into every stream's schema; docs/DESIGN.md says what each holds).
TAP_FIELD_SCHEMAS = {
    "_account_id": {"type": ["string", "null"]},
    "_updated_at": {"type": ["string", "null"], "format": "date-time"},
    "deleted": {"type": ["boolean", "null"]},
    "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"},
}
TAP_FIELDS = tuple(TAP_FIELD_SCHEMAS)

# A plan maps a key to None (convert this value) or to a sub-plan for a nested value.
Plan = dict[str, Any]


_DAYS: dict[int, str] = {}  # day number since the epoch -> "YYYY-MM-DDT"
_HOURS_MINUTES = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECONDS = tuple(f"{s:02d}Z" for s in range(60))


@lru_cache(maxsize=4096)
def rfc3339(seconds: int) -> str:
    """`time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))`, from a date formatted once
    per day and the time of day from tables (a third of the cost); the cache catches a
    record's `_updated_at`, usually the time its `created` was just converted from."""
    if type(seconds) is not int:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    day, rest = divmod(seconds, 86400)
    date = _DAYS.get(day)
    if date is None:
        date = _DAYS[day] = time.strftime("%Y-%m-%dT", time.gmtime(day * 86400))
    return date + _HOURS_MINUTES[rest // 60] + _SECONDS[rest % 60]


def _is_datetime(node: dict) -> bool:
    return node.get("format") == "date-time"


def compile_plan(node: dict) -> Plan | None:
    """The date-time paths below an object schema node, or None if there are none."""
    plan: Plan = {}
    for key, prop in node.get("properties", {}).items():
        if key in TAP_FIELDS:
            continue
        if _is_datetime(prop):
            plan[key] = None
            continue
        sub = _compile_value(prop)
        if sub is not None:
            plan[key] = sub
    return plan or None


def _compile_value(node: dict) -> Plan | None:
    members = node.get("anyOf", [node])
    merged: Plan = {}
    for member in members:
        if "properties" in member:
            sub = compile_plan(member)
        elif "items" in member and isinstance(member["items"], dict):
            items = member["items"]
            sub = {"[]": None} if _is_datetime(items) else (
                {"[]": inner} if (inner := _compile_value(items)) else None)
        else:
            sub = None
        if sub:
            merged.update(sub)
    return merged or None


def converted(value: Any, plan: Plan) -> Any:
    """`value` with the unix times that `plan` points at converted, leaving `value` and
    everything in it unchanged: each dict or list holding a conversion is copied once, the
    rest stays shared; `value` itself when there is nothing to convert (copy-on-write)."""
    if isinstance(value, dict):
        out = None
        for key, sub in plan.items():
            item = value.get(key)
            if item is None:
                continue
            if sub is None:
                if type(item) is not int:
                    continue
                new = rfc3339(item)
            else:
                new = converted(item, sub)
                if new is item:
                    continue
            if out is None:
                out = dict(value)
            out[key] = new
        return value if out is None else out
    if isinstance(value, list) and "[]" in plan:
        inner = plan["[]"]
        if inner is None:
            for v in value:
                if type(v) is int:
                    return [rfc3339(v) if type(v) is int else v for v in value]
            return value
        return mapped(value, lambda item: converted(item, inner))
    return value


def mapped(items: list, change: Any) -> list:
    """`items` with `change` applied to each, copied only if an item changed (`change`
    returns the item itself when nothing changes): lists a record shares are never changed."""
    out: list | None = None
    for i, item in enumerate(items):
        new = change(item)
        if new is not item:
            if out is None:
                out = list(items)
            out[i] = new
    return items if out is None else out


class RecordShaper:
    """Shapes raw Stripe objects of one stream into records matching its schema."""

    def __init__(self, schema: dict, created_field: str | None):
        self.plan = compile_plan(schema) or {}
        self.known = frozenset(schema.get("properties", {}))
        self.created_field = created_field
        self.drop_unknown = True

    def keeping_unknown(self) -> RecordShaper:
        """This shaper, leaving the top-level keys its schema does not know in the record, for
        schema evolution to decide (`tap_stripe.output.evolution`)."""
        shaper = copy.copy(self)
        shaper.drop_unknown = False
        return shaper

    def shape(self, obj: dict, account: str | None, updated_at: int | None = None) -> dict:
        """Shape `obj` and return it. `updated_at` defaults to the object's times.

        Only `obj`'s own top-level dict is changed in place; a nested dict or list holding a
        time to convert is replaced by a converted copy, never changed: nested objects are
        shared between records (a child record is a shallow copy of an object embedded in
        its parent, whose record may be written from another thread at the same time).
        """
        if updated_at is None:
            updated_at = obj.get("updated") or (obj.get(self.created_field) if self.created_field else None)
        if self.drop_unknown and not self.known.issuperset(obj):
            for key in [k for k in obj if k not in self.known]:
                del obj[key]
        for key, sub in self.plan.items():
            item = obj.get(key)
            if item is None:
                continue
            if sub is None:
                if type(item) is int:
                    obj[key] = rfc3339(item)
            else:
                new = converted(item, sub)
                if new is not item:
                    obj[key] = new
        obj["_account_id"] = account
        obj["_updated_at"] = rfc3339(updated_at) if type(updated_at) is int else None
        return obj

    def deletion(self, obj_id: str, object_type: str, deleted_at: int, account: str | None,
                 extra: dict | None = None) -> dict:
        """The record a target can soft-delete with: id, `deleted: true` and when."""
        record = {"id": obj_id, "object": object_type, **(extra or {})}
        record.update(deleted=True, _sdc_deleted_at=rfc3339(deleted_at),
                      _account_id=account, _updated_at=rfc3339(deleted_at))
        return {k: v for k, v in record.items() if k in self.known}
