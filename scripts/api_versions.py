#!/usr/bin/env python3
"""Regenerate docs/api-versions.md's list of changes between Stripe's 2023-08-16 spec and the
API version of the pinned `stripe` package, stream by stream.

    python scripts/api_versions.py          # rewrite docs/api-versions.md in place
    python scripts/api_versions.py --check  # exit 1 if it is out of date (tests run this)

Both sides go through scripts/generate.py's rules, so the streams and fields compared are the
tap's own. The 2023 spec is the repo's extract of it, `data/stripe-openapi/spec3-extract.json`
(data/stripe-openapi/README.md).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import build, load_openapi, load_sdk
from refresh import refresh

SPEC_2023 = ROOT / "data" / "stripe-openapi" / "spec3-extract.json"
DOC = ROOT / "docs" / "api-versions.md"
OURS = {"_account_id", "_sdc_deleted_at", "_updated_at", "deleted"}  # the tap's own fields
DEPTH = 3  # levels compared: `a`, `a.b` and (only to find where a field went) `a.b.c`


def fields(schema: dict, prefix: str = "", depth: int = 0) -> dict[str, str]:
    """The field paths of a schema (`parent.quote_details`, `taxes[].amount`) and their JSON
    types, DEPTH levels deep, not descending into expandable ids or into objects of their own
    (with an `id` and an `object`: invoice lines, an embedded discount), whose fields are
    their own streams' or objects'."""
    out: dict[str, str] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not prefix and name in OURS:
            continue
        path = f"{prefix}{name}"
        out[path] = _type(prop)
        node = prop
        while node.get("items"):
            node, path = node["items"], path + "[]"
        props = node.get("properties") or {}
        if props and depth + 1 < DEPTH and not {"id", "object"} <= set(props):
            out.update(fields(node, path + ".", depth + 1))
    return out


def _type(prop: dict) -> str:
    if "anyOf" in prop:
        return "id or object"
    types = [t for t in (prop.get("type") or []) if t != "null"]
    kind = "/".join(types) or "any"
    if prop.get("format") == "date-time":
        kind = "unix time"
    if kind == "array":
        kind = f"array of {_type(prop.get('items') or {})}"
    return kind


def _kind(spec: dict) -> str:
    if spec.get("kind") == "singleton":
        return "snapshot"
    if spec.get("parent"):
        return f"child of `{spec['parent']}`"
    return "`created` windows" if spec.get("created_filter") else "full table"


def _leaf(path: str) -> str:
    return re.split(r"[.\[\]]+", path.rstrip("[]."))[-1]


def changes(old_version: str, new_version: str) -> str:
    old_specs, old_schemas = build(load_openapi(SPEC_2023))
    new_specs, new_schemas = build(load_sdk())
    old_by, new_by = {s["name"]: s for s in old_specs}, {s["name"]: s for s in new_specs}
    lines = [f"Streams compared: {len(old_by)} of `{old_version}`, {len(new_by)} of `{new_version}`.", ""]
    gone = sorted(set(old_by) - set(new_by))
    added = sorted(set(new_by) - set(old_by))
    lines += ["### Streams", "", "| stream | change |", "|---|---|"]
    lines += [f"| `{n}` | removed: `{old_by[n]['path']}` is not in `{new_version}` |" for n in gone]
    lines += [f"| `{n}` | new: `{new_by[n]['path']}` ({_kind(new_by[n])}) |" for n in added]
    for name in sorted(set(old_by) & set(new_by)):
        before, after = _kind(old_by[name]), _kind(new_by[name])
        if before != after:
            lines.append(f"| `{name}` | read by {after}, was {before} |")
    lines += ["", "### Fields removed, moved or retyped", "",
              "Per stream, each field of the `2023-08-16` schema, two levels deep (`field` and "
              "`field.sub`; not inside objects of their own, which have their own streams), that is gone "
              "(only the outermost of a removed object) or has another type. \"New fields named like it\" "
              "lists fields of the new schema, up to three levels deep, with the same name (or its plural) "
              "that the old one lacked: where the value may have moved.", ""]
    for name in sorted(set(old_by) & set(new_by)):
        old, new = fields(old_schemas[name]), fields(new_schemas[name])
        fresh = [p for p in new if p not in old]
        rows = []
        for path in sorted(p for p in old if p.count(".") < DEPTH - 1):
            parent = path.rsplit(".", 1)[0] if "." in path else None
            if path not in new and (parent is None or parent in new):
                leaf = _leaf(path)
                like = [p for p in fresh if _leaf(p) in (leaf, leaf + "s")][:4]
                hint = ", ".join(f"`{p}`" for p in like) or "—"
                rows.append(f"| `{path}` | removed | {hint} |")
            elif path in new and old[path] != new[path]:
                rows.append(f"| `{path}` | {old[path]} → {new[path]} | |")
        if rows:
            lines += [f"#### `{name}`", "", "| field | change | new fields named like it |", "|---|---|---|",
                      *rows, ""]
    return "\n".join(lines).rstrip("\n")


def render(text: str) -> str:
    new_version = load_sdk()[0]["info"]["version"]
    block = changes("2023-08-16", new_version)
    pattern = re.compile(r"(<!-- BEGIN GENERATED: changes -->\n).*?(<!-- END GENERATED: changes -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{DOC.name} has no GENERATED block 'changes'")
    return pattern.sub(lambda m: m[1] + block + "\n" + m[2], text)


if __name__ == "__main__":
    sys.exit(refresh(DOC, render, "scripts/api_versions.py"))
