"""Object schemas for fabricating a table's objects, from the generated `components.py`.

A component is parsed the first time a table needs it; `object_schema(item_schemas)` inlines
component references `MAX_REF_DEPTH` deep (deeper objects are `{"type": ["object"]}`, which
`fake.gen` leaves empty) and merges the properties of a polymorphic list's item schemas.
"""

from __future__ import annotations

import threading

import orjson

from . import components

MAX_REF_DEPTH = 4
_LOCK = threading.Lock()
_PARSED: dict[str, dict] = {}
_OBJECTS: dict[tuple, dict] = {}
_EXAMPLES: dict[str, dict | None] = {}


def component(name: str) -> dict:
    schema = _PARSED.get(name)
    if schema is None:
        text = components.COMPONENTS.get(name)
        schema = _PARSED[name] = orjson.loads(text) if text else {"type": ["object"]}
    return schema


def example(object_type: str) -> dict | None:
    """Stripe's example object of this type (fixtures3.json), or None."""
    if object_type not in _EXAMPLES:
        text = components.EXAMPLES.get(object_type)
        _EXAMPLES[object_type] = orjson.loads(text) if text else None
    return _EXAMPLES[object_type]


def _with_null(schema: dict) -> dict:
    types = schema.get("type")
    if types is None or "null" in types:
        return schema
    return {**schema, "type": [*types, "null"]}


def materialize(node: dict, depth: int = 0, chain: tuple = ()) -> dict:
    ref = node.get("$ref")
    if ref is not None:
        if ref in chain or depth >= MAX_REF_DEPTH:
            return {"type": ["object"]}
        return materialize(component(ref), depth + 1, (*chain, ref))
    if "anyOf" in node:
        options = [materialize(o, depth, chain) for o in node["anyOf"]]
        real = [o for o in options if o.get("type") != ["null"]]
        if len(real) == 1:
            return _with_null(real[0]) if len(real) < len(options) else real[0]
        return {"anyOf": options}
    out = dict(node)
    if "properties" in node:
        out["properties"] = {k: materialize(v, depth, chain) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = materialize(node["items"], depth, chain)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = materialize(node["additionalProperties"], depth, chain)
    return out


def object_schema(item_schemas: tuple[str, ...]) -> dict:
    """The JSON-Schema-like object a table's items are fabricated from (cached)."""
    key = tuple(item_schemas)
    schema = _OBJECTS.get(key)
    if schema is None:
        with _LOCK:
            schema = _OBJECTS.get(key)
            if schema is None:
                props: dict = {}
                variants = None
                for name in key:
                    whole = materialize({"$ref": name})
                    for field, sub in (whole.get("properties") or {}).items():
                        props.setdefault(field, sub)
                    variants = variants or whole.get("variants")
                schema = {"type": ["object"], "properties": props}
                if variants:  # the sub-objects of which an object carries the one its type names
                    schema["variants"] = variants
                schema = _OBJECTS[key] = schema
    return schema
