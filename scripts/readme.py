#!/usr/bin/env python3
"""Regenerate the README's settings and streams tables from the tap itself.

    python scripts/readme.py          # rewrite README.md in place
    python scripts/readme.py --check  # exit 1 if README.md is out of date (tests run this)

The tables sit between `<!-- BEGIN GENERATED: name -->` and `<!-- END GENERATED: name -->`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from refresh import refresh

from tap_stripe.settings import CONFIG_SCHEMA, DEFAULT_FULL_RESYNC
from tap_stripe.streams import EXCLUDED_LISTS


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def settings_table() -> str:
    rows = ["| setting | type | default | description |", "|---|---|---|---|"]
    for name, prop in CONFIG_SCHEMA["properties"].items():
        kind = prop.get("type", "object")
        kind = "/".join(t for t in (kind if isinstance(kind, list) else [kind]) if t != "null")
        if prop.get("secret"):
            kind += " (secret)"
        default = prop.get("default")
        default = "" if default is None else f"`{default}`"
        rows.append(f"| `{name}` | {kind} | {_cell(default)} | {_cell(prop.get('description', ''))} |")
    return "\n".join(rows)


def _events(spec) -> str:
    return "events: " + (f"updates and `{spec.deleted_event}`" if spec.deleted_event else "updates")


def streams_table() -> str:
    from tap_stripe.tap import SPECS

    rows = ["| stream | endpoint | key | replication | changes and deletes |", "|---|---|---|---|---|"]
    for spec in sorted(SPECS.values(), key=lambda s: s.name):
        key = ", ".join(spec.key_properties) or "(none: one row per run)"
        if spec.kind == "report":
            replication = "report runs, bookmark on the interval end (opt-in)"
            changes = "re-run per interval"
        elif spec.parent:
            embedded = f" (embedded `{spec.embedded_field}`" + (", asked for with `expand[]`)" if
                                                                spec.embedded_when_expanded else ")") \
                if spec.embedded_field else ""
            replication = f"child of `{spec.parent}`{embedded}"
            changes = "read with each new or changed parent"
        elif spec.kind == "singleton":
            replication = "snapshot each run"
            changes = "snapshot"
        elif spec.replication_key:
            replication = f"incremental, `{spec.replication_key}` windows"
            if spec.name in DEFAULT_FULL_RESYNC:
                replication += "; full re-read every `full_resync_every_days` (table versions)"
            changes = _events(spec) if spec.event_types else "none (immutable or no events)"
        elif spec.event_types:
            replication = "full table, read whole on its first run and every `full_resync_every_days` (table versions)"
            changes = _events(spec) + " in between"
        else:
            replication = "full table, read whole each run (table versions)"
            changes = "the whole table each run"
        if not spec.selected_by_default and spec.kind != "report":
            replication += " (opt-in)"
        rows.append(f"| `{spec.name}` | `{spec.path}` | {key} | {replication} | {changes} |")
    rows += ["", "Lists that are not streams:", "", "| list | why |", "|---|---|"]
    rows += [f"| `{path}` | {_cell(why)} |" for path, why in sorted(EXCLUDED_LISTS.items())]
    return "\n".join(rows)


def reports_table() -> str:
    from tap_stripe.reports.columns import REPORT_STREAMS

    runs = {"interval": "one run per day (or per sync) from the bookmark",
            "interval_end": "one snapshot per day boundary (or per sync)",
            "payout": "one run per paid payout since the bookmark"}
    rows = ["| stream | Stripe report type | runs | columns (default) |", "|---|---|---|---|"]
    for spec in REPORT_STREAMS:
        columns = ", ".join(f"`{name}`" for name, _ in spec.columns)
        rows.append(f"| `{spec.name}` | `{spec.family}.{spec.documented_version}` (newest offered) | "
                    f"{runs[spec.params]} | {columns} |")
    return "\n".join(rows)


BLOCKS = {"settings": settings_table, "streams": streams_table, "reports": reports_table}


def render(text: str) -> str:
    for name, build in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no GENERATED block '{name}'")
        text = pattern.sub(lambda m: m[1] + build() + "\n" + m[2], text)  # noqa: B023  called by sub, in this iteration
    return text


if __name__ == "__main__":
    sys.exit(refresh(ROOT / "README.md", render, "scripts/readme.py"))
