"""Schema evolution: fields newer than a stream's schema are kept, not dropped.

A record may carry a top-level field its stream's schema lacks (an account on a newer API
version, a field Stripe adds next month). With `schema_evolution` (the default) the field is
added to the stream's schema, typed from its value and nullable, and the updated SCHEMA goes
to the target before the first record that has the field, in output order.

Types: a boolean is `boolean`, an integer `integer`, a float `number` (an integer field that
later holds a float becomes `number`), a string `string`, an object an opaque
`{"type": ["object", "null"]}` (no properties: stored as JSON, whatever keys it holds), a
list `array` with `items` typed from its elements (`{}` until one is seen). A value of
another type than the field's widens it (`["integer", "string", "null"]`) in a new revision
of the schema; a schema only ever widens, so every record written before still fits it. A
field first seen as null is left out until a record holds a value (a missing field and a
null one load the same). Times in new fields stay the integers Stripe sends (only the
schema's `date-time` fields are converted).

Only top-level fields are added. A field Stripe adds inside an object the schema knows
(`payment_method_details.card.new_thing`) stays in that object as it always did (a JSON
column), without a SCHEMA change; with flattening, the SDK's flattener keeps only the
flattened schema's columns, as before.

Sensitive data and secrets: a new field is classified by the same reviewed rules as the
generated schemas (`sensitive.classify.classify_schema`, by its name), and its category's policy
applies (`hash`, `mask`; `drop` leaves it out). A `sensitive_data.fields` rule naming it wins
(applied with the stream's other rules). A field whose name looks like a credential
(`secret`, `client_secret`, `password`, `api_key`, `access_token`, `cvc`, …) is never added,
and such keys are removed from inside new object fields too; nor is a key that is no field
name (`owner.customer`). The run summary says what was left out.

Ordering: workers admit each record (`admit`, before it is rendered) and learn the schema
revision it needs; a new revision is published only once its output (the SDK stream maps,
flattener and SCHEMA messages, built by the tap's `rebuild`) is in place, so a record is
always rendered with a schema that has its fields. The rendered group carries that revision
(a `GroupKind.SCHEMA` group before it, feeds.py), and the main thread writes the stream's newest
SCHEMA before the first group needing a revision not yet announced (emission.py).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from tap_stripe.errors import Unaddable
from tap_stripe.output.records import mapped
from tap_stripe.sensitive.classify import classify_schema
from tap_stripe.sensitive.protect import Protector

LOGGER = logging.getLogger("tap_stripe")

# Names of credentials: never added as fields, and removed from inside new object fields.
SECRET_NAME = re.compile(r"(?:^|_)(?:secret|password|passphrase|passcode|api_key|secret_key|private_key|"
                         r"access_token|refresh_token|auth_token|credentials?)(?:_|$)|^(?:cvc|cvv)2?$")

# Stripe's field names; a key that is not one (`owner.customer`) is no field to add.
FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_ORDER = ("boolean", "integer", "number", "string", "object", "array")
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", Decimal: "number", str: "string",
               dict: "object", list: "array", type(None): "null"}

# (stream, properties of the added fields) -> the SCHEMA messages of the stream's schema with them.
Rebuild = Callable[[str, dict[str, dict]], list[dict]]


def json_type(value: Any) -> str:
    """The JSON type of a decoded value (`integer` for ints, never for bools)."""
    return _JSON_TYPES.get(type(value)) or ("object" if isinstance(value, dict) else
                                            "array" if isinstance(value, list) else "string")


def type_list(types: Iterable[str]) -> list[str]:
    """Nullable JSON Schema types, in a stable order (`number` covers `integer`)."""
    kinds = set(types) - {"null"}
    if "number" in kinds:
        kinds.discard("integer")
    return [t for t in _ORDER if t in kinds] + ["null"]


def looks_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name.lower()))


def scrubbed(value: Any) -> Any:
    """`value` without keys that name credentials at any depth: a copy of what changes, the
    value itself when nothing does (nested values may be shared with other records)."""
    if type(value) is dict:
        out = None
        for key, item in value.items():
            if looks_secret(key):
                if out is None:
                    out = dict(value)
                del out[key]
                continue
            new = scrubbed(item)
            if new is not item:
                if out is None:
                    out = dict(value)
                out[key] = new
        return value if out is None else out
    if type(value) is list:
        return mapped(value, scrubbed)
    return value


class Field:
    """An added field: the revision it was added in, and per JSON type (and per element type,
    for arrays) the revision from which the stream's schema accepts it. Read without a lock:
    entries are only added, after the revision that needs them is published."""

    __slots__ = ("added", "items", "name", "types")

    def __init__(self, name: str, added: int):
        self.name = name
        self.added = added
        self.types: dict[str, int] = {}
        self.items: dict[str, int] = {}

    def need(self, value: Any) -> int | None:
        """The revision from which the schema accepts `value`, or None if none does yet."""
        if value is None:
            return self.added
        kind = json_type(value)
        need = self.types.get(kind)
        if need is None:
            return None
        if kind == "array":
            for item in value:
                item_need = self.items.get(json_type(item))
                if item_need is None:
                    return None
                if item_need > need:
                    need = item_need
        return need

    def missing(self, value: Any) -> tuple[set[str], set[str]]:
        """The types (and element types) `value` has that the field does not accept yet."""
        kind = json_type(value)
        types = {kind} - set(self.types)
        items = {json_type(item) for item in value} - set(self.items) if kind == "array" else set()
        return types, items

    def schema(self, types: Iterable[str] | None = None, items: Iterable[str] | None = None) -> dict:
        """The field's JSON Schema (with `types`/`items` added, when given)."""
        kinds = set(self.types) | set(types or ())
        node: dict[str, Any] = {"type": type_list(kinds)}
        if "array" in kinds:
            elements = set(self.items) | set(items or ())
            node["items"] = {"type": type_list(elements)} if elements - {"null"} else {}
        return node


class StreamEvolution:
    """One stream's added fields and schema revisions (revision 0: the catalog's schema)."""

    def __init__(self, name: str, known: frozenset[str], policy: FieldPolicy):
        self.name = name
        self.known = known
        self.policy = policy
        self.lock = threading.Lock()
        self.fields: dict[str, Field] = {}
        self.rejected: dict[str, str] = {}  # field -> why it is left out
        self.revision = 0
        self.published: tuple[int, list[dict]] = (0, [])  # the newest revision and its SCHEMA messages
        self.changes: list[tuple[int, str]] = []  # (revision, what changed), for the run summary
        self.protected: dict[str, str] = {}  # added field -> category, protected by `protector`
        self.protector: Protector | None = None


class FieldPolicy:
    """What the `sensitive_data` setting says of a field that is not in the schemas."""

    def __init__(self, sensitive_data: Mapping | None = None, hash_key: str | None = None,
                 field_rules: Callable[[str], Mapping[str, str]] | None = None):
        self.categories = dict((sensitive_data or {}).get("categories") or {})
        self.hash_key = hash_key
        self.field_rules = field_rules or (lambda stream: {})

    def category(self, stream: str, name: str, siblings: Iterable[str]) -> str | None:
        """The category the reviewed rules give a top-level field of this name."""
        schema = {"properties": {**{k: {} for k in siblings}, name: {"type": ["string", "null"]}}}
        return classify_schema(schema, stream).get(name)

    def decide(self, stream: str, name: str, siblings: Iterable[str]) -> tuple[str, str | None]:
        """("reject", why), ("protect", category) or ("keep", None) for a new field."""
        if not FIELD_NAME.fullmatch(name):
            return "reject", "not a field name"
        if looks_secret(name):
            return "reject", "looks like a secret"
        rule = self.field_rules(stream).get(name)
        if rule is not None:  # a field rule names it: applied with the stream's other rules
            return ("reject", "sensitive_data drops it") if rule == "drop" else ("keep", None)
        category = self.category(stream, name, siblings)
        policy = self.categories.get(category, "keep") if category else "keep"
        if policy == "drop":
            return "reject", f"sensitive_data drops {category} fields"
        return ("protect", category) if policy != "keep" else ("keep", None)


class SchemaEvolution:
    """The run's added fields, per stream; `admit` is safe to call from any worker thread."""

    def __init__(self, evolving: Iterable[str], known: Callable[[str], frozenset[str]], rebuild: Rebuild,
                 policy: FieldPolicy | None = None, note: Callable[[str, str], None] | None = None):
        self.evolving = frozenset(evolving)
        self.known = known
        self.rebuild = rebuild
        self.policy = policy or FieldPolicy()
        self.note = note or (lambda stream, text: None)
        self.streams: dict[str, StreamEvolution] = {}
        self.lock = threading.Lock()

    def shapers(self, shapers: Mapping[str, Any]) -> Mapping[str, Any]:
        """The run's record shapers, those of the evolving streams leaving the fields their
        schemas lack in the records, for `admit` to decide."""
        return _KeepingShapers(shapers, self.evolving)

    def stream(self, name: str) -> StreamEvolution | None:
        state = self.streams.get(name)
        if state is None and name in self.evolving:
            known = self.known(name)
            with self.lock:
                state = self.streams.get(name)
                if state is None:
                    state = self.streams[name] = StreamEvolution(name, known, self.policy)
        return state

    def admit(self, stream: str, record: dict) -> int:
        """Decide the fields of `record` its stream's schema lacks (kept, protected, or left
        out) and return the schema revision the record needs (0: the catalog's schema). Called
        in the worker that renders the record, before it is rendered; changes only the
        record's own top-level dict."""
        state = self.streams.get(stream) or self.stream(stream)
        if state is None or state.known.issuperset(record):
            return 0
        extra = [k for k in record if k not in state.known]
        protect = False
        for key in extra:
            if key not in state.fields and (record[key] is None or key in state.rejected or
                                            not self.decide(state, key)):
                del record[key]
                continue
            protect = protect or key in state.protected
        if protect and state.protector is not None:
            state.protector.record(stream, record)  # the added fields' category policies, once
        need = 0
        pending: dict[str, Any] = {}
        for key in extra:
            if key not in record:
                continue
            value = record[key]
            if type(value) in (dict, list):
                value = record[key] = scrubbed(value)
            field = state.fields.get(key)
            revision = field.need(value) if field is not None else None
            if revision is None:
                pending[key] = value
            elif revision > need:
                need = revision
        if pending:  # one new revision for all of this record's new fields and types
            try:
                need = max(need, self.widen(state, pending))
            except Unaddable as exc:  # the output cannot have them: left out, as without evolution
                for key in exc.keys:
                    record.pop(key, None)
                return max([need, *(state.fields[k].need(record[k]) or 0 for k in pending if k in record)])
        return need

    def decide(self, state: StreamEvolution, key: str) -> bool:
        """Whether a new field is added (it is when its value comes); noted once if not."""
        with state.lock:
            if key in state.fields:
                return True
            if key in state.rejected:
                return False
            verdict, detail = state.policy.decide(state.name, key, state.known | state.fields.keys())
            if verdict == "reject":
                state.rejected[key] = detail or ""
                text = f"field {key} of stream {state.name} not added: {detail}"
                level = logging.WARNING if detail == "looks like a secret" else logging.INFO
                LOGGER.log(level, "Stream %s: new field %s is left out: %s.", state.name, key, detail)
                self.note(state.name, text)
                return False
            if verdict == "protect" and detail:
                protected = {**state.protected, key: detail}
                state.protector = Protector.from_config(
                    {"categories": state.policy.categories}, state.policy.hash_key, {state.name: protected})
                state.protected = protected
            return True

    def widen(self, state: StreamEvolution, values: dict[str, Any]) -> int:
        """A new revision of the stream's schema that accepts `values` (field -> value): its
        output is rebuilt and published before the fields accept the values, so no worker
        renders them with an older output. Returns the revision the values need."""
        with state.lock:
            changes: dict[str, tuple[Field, set[str], set[str]]] = {}
            need = 0
            for key, value in values.items():
                field = state.fields.get(key)
                revision = field.need(value) if field is not None else None
                if revision is not None:  # another worker widened it meanwhile
                    need = max(need, revision)
                    continue
                if field is None:
                    field = Field(key, state.revision + 1)
                types, items = field.missing(value)  # a new field's value is never null (see admit)
                changes[key] = (field, types, items)
            if not changes:
                return need
            revision = state.revision + 1
            properties = {name: f.schema() for name, f in state.fields.items()}
            for key, (field, types, items) in changes.items():
                properties[key] = field.schema(types, items)
            try:
                messages = self.rebuild(state.name, properties)
            except Exception as exc:
                reason = f"the schema cannot take it ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
                for key in changes:
                    if key not in state.fields:
                        state.rejected[key] = reason
                    self.note(state.name, f"field {key} of stream {state.name} not added: {reason}")
                LOGGER.warning("Stream %s: new field(s) %s left out: %s.", state.name, ", ".join(changes), reason)
                raise Unaddable(list(changes)) from None
            # Published in this order: the revision (which the main thread announces), then
            # the types the fields accept (which let workers render values needing them).
            added = [key for key, (field, _, _) in changes.items() if key not in state.fields]
            if added:
                state.changes.append((revision, f"added field{'s' if len(added) > 1 else ''} {', '.join(added)} "
                                                f"to stream {state.name}"))
            for key in changes:
                if key in state.fields:
                    kinds = "|".join(t for t in properties[key]["type"] if t != "null")
                    state.changes.append((revision, f"widened field {key} of stream {state.name} to {kinds}"))
            state.revision = revision
            state.published = (revision, messages)
            for key, (field, types, items) in changes.items():
                for kind in types:
                    field.types[kind] = revision
                for kind in items:
                    field.items[kind] = revision
                if key not in state.fields:
                    state.fields[key] = field
            return revision

    def announcement(self, stream: str, after: int) -> tuple[int, list[dict], list[str]]:
        """The stream's newest revision, its SCHEMA messages, and what changed since `after`
        (for the run summary). Main thread."""
        state = self.streams[stream]
        revision, messages = state.published
        return revision, messages, [text for rev, text in list(state.changes) if after < rev <= revision]

    def added(self, stream: str) -> dict[str, dict]:
        """The properties added to a stream so far (for tests and tools)."""
        state = self.streams.get(stream)
        if state is None:
            return {}
        with state.lock:
            return {name: f.schema() for name, f in state.fields.items()}


class _KeepingShapers(Mapping):
    """`SchemaEvolution.shapers`: each evolving stream's shaper `keeping_unknown`, made once."""

    def __init__(self, shapers: Mapping[str, Any], evolving: frozenset[str]):
        self.base = shapers
        self.evolving = evolving
        self.made: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        shaper = self.made.get(name)
        if shaper is None:
            shaper = self.base[name]
            if name in self.evolving:
                shaper = shaper.keeping_unknown()
            shaper = self.made.setdefault(name, shaper)
        return shaper

    def __iter__(self):
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)

    def __contains__(self, name: object) -> bool:
        return name in self.base
