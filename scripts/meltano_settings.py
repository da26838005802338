#!/usr/bin/env python3
"""Regenerate the `settings:` of the tap-stripe extractor in meltano.yml from `--about`.

    python scripts/meltano_settings.py          # rewrite meltano.yml in place
    python scripts/meltano_settings.py --check  # exit 1 when it is out of date

tests/test_meltano.py checks the block against `--about` too; scripts/meltano_hub.py writes the
same settings into the Meltano Hub definition. Kinds: string → string
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


def settings(props: dict | None = None) -> list[dict]:
    """Meltano setting definitions (meltano.yml, the Meltano Hub definition) of `--about`'s settings."""
    out = []
    for name, prop in (about_settings() if props is None else props).items():
        kinds = prop.get("type") or "object"
        kind = next(t for t in (kinds if isinstance(kinds, list) else [kinds]) if t != "null")
        setting: dict = {"name": name}
        if "enum" in prop:
            setting["kind"] = "options"
        elif kind == "string":
            setting["kind"] = "date_iso8601" if prop.get("format") == "date-time" else "string"
        else:
            setting["kind"] = KINDS[kind]
        setting["label"] = prop.get("title") or label(name)
        setting["description"] = prop.get("description", "")
        if prop.get("secret"):
            setting["sensitive"] = True
        if "enum" in prop:
            setting["options"] = [{"label": v, "value": v} for v in prop["enum"]]
        out.append(setting)
    return out


def block() -> str:
    lines = ["    settings:"]
    for setting in settings():
        lines += [f"    - name: {setting['name']}", f"      kind: {setting['kind']}",
                  f"      label: {json.dumps(setting['label'])}",
                  f"      description: {json.dumps(setting['description'], ensure_ascii=False)}"]
        if setting.get("sensitive"):
            lines.append("      sensitive: true")
        if "options" in setting:
            lines.append("      options:")
            lines += [f"      - {{label: {o['label']}, value: {o['value']}}}" for o in setting["options"]]
    return "\n".join(lines) + "\n"


def render(text: str) -> str:
    pattern = re.compile(r"^    settings:\n(?:    - .*\n|      .*\n)*", re.M)
    if not pattern.search(text):
        raise SystemExit("meltano.yml has no extractor settings block")
    return pattern.sub(lambda _: block(), text, count=1)


if __name__ == "__main__":
    sys.exit(refresh(ROOT / "meltano.yml", render, "scripts/meltano_settings.py"))
