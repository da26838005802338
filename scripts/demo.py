#!/usr/bin/env python3
"""`make demo`: the tap against the local Stripe sandbox, into a real Singer target.

1. starts the sandbox (sample data, no Stripe account needed);
2. runs `tap-stripe | target-jsonl` (target-jsonl from PyPI, in its own venv, installed on the
   first run) and shows the run's summary and the tables that landed, with their row counts;
3. changes some objects in the sandbox, a day later on its clock, runs again from the saved
   state, and shows that only the changes moved.

The tap's log (progress, its own summary table and a METRIC line per request) goes to
demo-output/run-<n>.log, whose path is printed; `DEMO_VERBOSE=1 make demo` shows it on the
terminal as the runs go.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stripe_sandbox import Sandbox

OUT = ROOT / "demo-output"
TARGET_VENV = ROOT / ".venv" / "targets" / "target-jsonl"
VERBOSE = os.environ.get("DEMO_VERBOSE", "") not in ("", "0")
STREAMS = ["balance_transactions", "charges", "customers", "events", "invoice_line_items", "invoices",
           "payment_intents", "prices", "products", "refunds", "subscription_items", "subscriptions"]


def target_command() -> list[str]:
    executable = TARGET_VENV / "bin" / "target-jsonl"
    if not executable.exists():
        print("Installing target-jsonl from PyPI into its own venv (first run only)…", flush=True)
        venv.create(TARGET_VENV, with_pip=True)
        subprocess.run([str(TARGET_VENV / "bin" / "pip"), "install", "--quiet", "target-jsonl==0.1.4",
                        "setuptools<81"], check=True)
    return [str(executable), "--config", str(OUT / "target.json")]


def catalog(config: Path) -> dict:
    discovered = json.loads(subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(config),
                                            "--discover"], capture_output=True, text=True, check=True).stdout)
    for entry in discovered["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in STREAMS
    return discovered


def run_pipeline(number: int, label: str, state: dict | None) -> tuple[dict | None, dict]:
    print(f"\n=== {label}: tap-stripe | target-jsonl ===", flush=True)
    command = [sys.executable, "-m", "tap_stripe", "--config", str(OUT / "tap.json"),
               "--catalog", str(OUT / "catalog.json")]
    if state:
        (OUT / "state.json").write_text(json.dumps(state))
        command += ["--state", str(OUT / "state.json")]
    log_path = OUT / f"run-{number}.log"
    target_cmd = target_command()  # installed before the tap starts, so the run's time is the run's
    with open(log_path, "w") as log:
        tap = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=None if VERBOSE else log)
        target = subprocess.run(target_cmd, stdin=tap.stdout, capture_output=True, text=True)
        tap.stdout.close()
        failed = tap.wait() != 0 or target.returncode != 0
    if failed:
        if not VERBOSE:
            print(log_path.read_text()[-3000:], file=sys.stderr)
        print(target.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"{label} failed (the tap's log: {log_path.relative_to(ROOT)})")
    states = [json.loads(line) for line in target.stdout.splitlines() if line.strip().startswith("{")]
    summary = json.loads((OUT / "summary.json").read_text())
    streams = summary["streams"].values()
    print(f"{summary['outcome']}: {sum(s['records'] for s in streams):,} records from "
          f"{sum(1 for s in streams if s['records'])} streams in {summary['duration_seconds']:.1f} s, "
          f"{sum(s['requests'] for s in streams):,} requests")
    if not VERBOSE:
        print(f"the tap's log (progress, summary table, a METRIC line per request): {log_path.relative_to(ROOT)}")
    return (states[-1] if states else state), summary


def landed() -> dict[str, int]:
    """Rows per table in the target's files (target-jsonl appends each run to one file per stream)."""
    counts: dict[str, int] = {}
    for path in sorted(OUT.glob("*.jsonl")):
        stream = path.name.split("-")[0]
        counts[stream] = counts.get(stream, 0) + sum(1 for _ in path.open())
    return counts


def show_tables(summary: dict) -> None:
    print(f"\nTables in {OUT.relative_to(ROOT)}/ (one JSONL file per stream):")
    counts = landed()
    width = max(map(len, counts))
    print(f"  {'table'.ljust(width)}  {'rows':>7}  {'new':>5}  {'updated':>7}  {'deleted':>7}")
    for stream, rows in sorted(counts.items()):
        stats = summary["streams"].get(stream, {})
        print(f"  {stream.ljust(width)}  {rows:>7,}  {stats.get('new', 0):>5,}  {stats.get('updated', 0):>7,}  "
              f"{stats.get('deleted', 0):>7,}")


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    (OUT / "target.json").write_text(json.dumps({"destination_path": str(OUT)}))
    with Sandbox(seed=42, scale=0.3, history_days=180) as sandbox:
        print(f"Stripe sandbox on {sandbox.url} (seed 42): no Stripe account, no network.")
        config = {"api_key": "sk_test_sandbox", "api_url": sandbox.url, "max_requests_per_second": 500,
                  "max_requests_per_second_per_endpoint": 200, "full_resync_streams": [],
                  "progress_interval_seconds": 2, "summary_file": str(OUT / "summary.json")}
        (OUT / "tap.json").write_text(json.dumps(config))
        (OUT / "catalog.json").write_text(json.dumps(catalog(OUT / "tap.json")))

        state, summary = run_pipeline(1, "First run (initial load)", None)
        show_tables(summary)

        sandbox.advance(86400)
        charges = sandbox.truth("charges")
        for charge in charges[:3]:
            sandbox.update("charges", charge["id"], {"description": "Refund requested by customer"})
        for _ in range(5):
            sandbox.create("charges")
        customer = sandbox.truth("customers")[0]
        sandbox.update("customers", customer["id"], {"email": "new.address@example.com"})
        product = sandbox.truth("products")[0]
        sandbox.delete("products", product["id"])
        sandbox.advance(60)
        print("\nA day later in the sandbox: 3 charges updated, 5 charges created, 1 customer's email "
              "changed, 1 product deleted.")

        _, summary = run_pipeline(2, "Second run (incremental, from the saved state)", state)
        print("\nWhat moved in the second run:")
        for stream, stats in summary["streams"].items():
            moved = stats["new"] + stats["updated"] + stats["deleted"]
            if moved:
                print(f"  {stream}: {stats['new']} new, {stats['updated']} updated, {stats['deleted']} deleted")
        untouched = [s for s, st in summary["streams"].items() if st["new"] + st["updated"] + st["deleted"] == 0]
        print(f"  nothing from: {', '.join(untouched)}")
    print(f"\nThe target's files are in {OUT.relative_to(ROOT)}/, the tap's logs next to them "
          "(DEMO_VERBOSE=1 shows them as the runs go).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
