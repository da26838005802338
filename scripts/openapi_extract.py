#!/usr/bin/env python3
"""Write data/stripe-openapi/spec3-extract.json: the part of Stripe's 2023-08-16 OpenAPI spec
that scripts/generate.py (`--openapi`), scripts/api_versions.py and tests/test_generate.py read.

    python scripts/openapi_extract.py SPEC3_JSON [--out data/stripe-openapi/spec3-extract.json]

SPEC3_JSON is Stripe's spec of `stripe/openapi` at commit
63a674638635c68de26b9f3add13e58198f4df44 as JSON. The committed extract was made from that
commit's `openapi/spec3.yaml` (sha256 eed9ac08a03a5374caa994362bfa080ae87ee75f0a3dc76f9d48b19c705b50bb)
converted mechanically to compact JSON (2.6 MB); the commit's own `openapi/spec3.json` is the
same spec. The extract (about a quarter of the size) keeps:

- `openapi`, `info`;
- every path's GET operation: its `operationId`, query and path `parameters` and its `200`
  response (the lists, their parameters and item schemas, the retrieve paths);
- of `POST /v1/webhook_endpoints`, only the `enabled_events` enum (the version's event types);
- every component schema, without `title`, `maxLength` and `description` — except the
  description of an integer, which the generator reads to find unix times the spec left
  unmarked ("… since the Unix epoch").

It drops the other operations (request bodies of writes), `servers` and `security`. The
extract names its source and the sha256 of the JSON it was made from in `info.x-extract`. Nothing else changes:
`tests/test_generate.py` runs the generator on the extract, and the generator's output from
the full spec and from the extract was compared byte for byte when the extract was made.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "data" / "stripe-openapi" / "spec3-extract.json"
SOURCE = {"repository": "stripe/openapi", "path": "openapi/spec3.yaml",
          "commit": "63a674638635c68de26b9f3add13e58198f4df44"}
DROPPED_KEYWORDS = ("title", "maxLength")


def schema(node: dict) -> dict:
    """A schema without the keywords nothing reads (property names are kept whatever they are)."""
    out: dict = {}
    for key, value in node.items():
        if key in DROPPED_KEYWORDS or (key == "description" and node.get("type") != "integer"):
            continue
        if key == "properties":
            out[key] = {name: schema(prop) for name, prop in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            out[key] = [schema(member) for member in value]
        elif key == "x-expansionResources":
            out[key] = {k: [schema(m) for m in v] if isinstance(v, list) else v for k, v in value.items()}
        else:
            out[key] = value
    return out


def get_operation(op: dict) -> dict:
    out: dict = {}
    if "operationId" in op:
        out["operationId"] = op["operationId"]
    if "parameters" in op:
        out["parameters"] = [
            {k: schema(v) if k == "schema" else v for k, v in param.items() if k != "description"}
            for param in op["parameters"]
        ]
    ok = op.get("responses", {}).get("200")
    if ok:
        content = {kind: {"schema": schema(body["schema"])} for kind, body in ok.get("content", {}).items()
                   if "schema" in body}
        out["responses"] = {"200": {"content": content}}
    return out


def extract(spec: dict, sha256: str) -> dict:
    paths: dict = {}
    for path, ops in spec["paths"].items():
        if "get" in ops:
            paths[path] = {"get": get_operation(ops["get"])}
    form = "application/x-www-form-urlencoded"
    body = spec["paths"]["/v1/webhook_endpoints"]["post"]["requestBody"]["content"][form]["schema"]
    enabled = schema(body["properties"]["enabled_events"])
    paths["/v1/webhook_endpoints"]["post"] = {
        "requestBody": {"content": {form: {"schema": {"properties": {"enabled_events": enabled}}}}}}
    info = {**spec["info"], "x-extract": {**SOURCE, "sha256": sha256, "made_by": "scripts/openapi_extract.py"}}
    return {
        "openapi": spec["openapi"],
        "info": info,
        "paths": paths,
        "components": {"schemas": {name: schema(c) for name, c in spec["components"]["schemas"].items()}},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="Stripe's spec at the commit above, as JSON")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.spec.is_file():
        print(f"error: {args.spec} not found: pass stripe/openapi's spec as JSON "
              f"(commit {SOURCE['commit']})", file=sys.stderr)
        return 2
    raw = args.spec.read_bytes()
    spec = json.loads(raw)
    if spec.get("info", {}).get("version") != "2023-08-16":
        print(f"error: {args.spec} is API version {spec.get('info', {}).get('version')}, not 2023-08-16",
              file=sys.stderr)
        return 2
    text = json.dumps(extract(spec, hashlib.sha256(raw).hexdigest()), separators=(",", ":"), ensure_ascii=False)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(text) + 1} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
