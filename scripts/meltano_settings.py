#!/usr/bin/env python3
"""Regenerate the `settings:` of the tap-stripe extractor in meltano.yml from `--about`.

    python scripts/meltano_settings.py          # rewrite meltano.yml in place
    python scripts/meltano_settings.py --check  # exit 1 when it is out of date

tests/test_meltano.py checks the block against `--about` too. Kinds: string → string
(`date_iso8601` for date-times), integer, number → decimal, boolean, array, object, and an
`enum` → options. Defaults stay the tap's own.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refresh import refresh

KINDS = {"integer": "integer", "number": "decimal", "boolean": "boolean", "array": "array", "object": "object"}
ACRONYMS = {"api": "API", "id": "ID", "ids": "IDs", "url": "URL", "oauth": "OAuth", "ca": "CA"}


def label(name: str) -> str:
    words = [ACRONYMS.get(w, w) for w in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def about_settings() -> dict:
    """The settings `--about` shows: the tap's own and the SDK's built-in ones."""
    out = subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return json.loads(out)["settings"]["properties"]


def block() -> str:
    lines = ["    settings:"]
    for name, prop in about_settings().items():
        kinds = prop.get("type") or "object"
        kind = next(t for t in (kinds if isinstance(kinds, list) else [kinds]) if t != "null")
        lines += [f"    - name: {name}"]
        if "enum" in prop:
            lines.append("      kind: options")
        elif kind == "string":
            lines.append(f"      kind: {'date_iso8601' if prop.get('format') == 'date-time' else 'string'}")
        else:
            lines.append(f"      kind: {KINDS[kind]}")
        lines.append(f"      label: {json.dumps(prop.get('title') or label(name))}")
        lines.append(f"      description: {json.dumps(prop.get('description', ''), ensure_ascii=False)}")
        if prop.get("secret"):
            lines.append("      sensitive: true")
        if "enum" in prop:
            lines.append("      options:")
            lines += [f"      - {{label: {v}, value: {v}}}" for v in prop["enum"]]
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    pattern = re.compile(r"^    settings:\n(?:    - .*\n|      .*\n)*", re.M)
    if not pattern.search(text):
        raise SystemExit("meltano.yml has no extractor settings block")
    return pattern.sub(lambda _: block(), text, count=1)


if __name__ == "__main__":
    sys.exit(refresh(ROOT / "meltano.yml", render, "scripts/meltano_settings.py"))
