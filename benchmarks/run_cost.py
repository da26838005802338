"""What a run costs: requests, records and seconds of a first load, a quiet run and a run after a few changes.

The tap's real command line (`tap-stripe --config … --catalog … --state …`) with its DEFAULT
settings: the config holds only `api_key` and `api_url`, so the rate budget is the one the tap
derives for an `sk_test_` key (80% of Stripe's test-mode 25/s: 20 requests/s globally, 20/s per
endpoint), `full_resync_streams` is its default (customers, invoices), and so on. The sandbox runs
in this process (a thread); its clock is simulated and only moves when this script advances it,
so which changes a run can see never depends on wall-clock time. Requests are counted at the
sandbox (every request it answered, whatever its status); records are the RECORD lines of the
tap's stdout, and a record is an "unchanged re-send" when its content equals the last record of
the same stream and key an earlier run of the scenario emitted.

Scenario 1 (default; `--n 300` → N and 10N): an account of N customers (each with the sandbox's
few customer balance transactions and tax ids), N charges, N subscriptions (with items), N
invoices (with lines) and 2N balance transactions; selected: those five top-level streams and
their four children. Runs, each from the previous run's last STATE:

  (a) first load;
  (b) quiet: the clock two minutes later, nothing changed;
  (c) after k changes (`--k 11`: customer updates, a tax id and a balance transaction added to
      old customers, an invoice update, a new charge), spread over the next two minutes.

Targets: quiet ≤ 2 × 5 top-level streams + 4 = 14 requests, and the same at N and 10N within 3;
after k changes ≤ quiet + 4k; a first load no more than the baseline below.

Scenario 2 (`--demo`): the demo's data (scripts/demo.py: seed 42, scale 0.3, 180 days) with every
list stream of the discovered catalog selected (117; its report streams download their results
from `files_url`, which default settings leave at files.stripe.com); a first load and a quiet run
a minute later. Target: quiet ≤ 2 × 117 + 4 = 238 requests.

Scenario 3 (`--freshness`): N's account; the tap runs every simulated minute for M minutes
(`--minutes 5`) while changes arrive at 10/s of sandbox time. A change is found in the output
by its marker (`metadata.bench`); its delay is from its time to the end of the run that
delivered it, taking the run's duration as its measured wall time. Runs overlap when a run
takes longer than the minute to the next one.

    .venv/bin/python benchmarks/run_cost.py                  # N = 300 and 3,000
    .venv/bin/python benchmarks/run_cost.py --n 100 --scales 1 --verbose
    .venv/bin/python benchmarks/run_cost.py --latency-ms 200 --jitter-ms 100   # Stripe-like: 250 ± 50 ms
    .venv/bin/python benchmarks/run_cost.py --demo
    .venv/bin/python benchmarks/run_cost.py --freshness --minutes 5
    .venv/bin/python benchmarks/run_cost.py --all            # all three (make bench-cost)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import ROOT, SANDBOX_KEY, SANDBOX_NOW, machine

from stripe_sandbox import Sandbox
from tap_stripe.api.ratelimit import default_limits
from tap_stripe.streams import SPECS

TOP_LEVEL = ["customers", "charges", "subscriptions", "invoices", "balance_transactions"]
CHILDREN = ["customer_balance_transactions", "customer_tax_ids", "subscription_items", "invoice_line_items"]
DEMO_LIST_STREAMS = 117  # the list streams of the discovered catalog (its 11 report streams left out)
# Requests of the first load at N = 300 and 3,000, measured when this script was added (seed 1,
# docs/performance.md "Run cost"): later code should cost no more. Other N have no baseline.
BASELINE_FIRST_LOAD: dict[int, int] = {300: 649, 3000: 6461}
# One period of the changes of run (c); longer k repeat it.
CHANGE_CYCLE = ["customer_update", "tax_id_added", "customer_update", "balance_transaction_added",
                "customer_update", "invoice_update", "customer_update", "new_charge", "customer_update",
                "customer_update", "customer_update"]


def tap_command() -> list[str]:
    script = Path(sys.executable).with_name("tap-stripe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tap_stripe"]


# ----------------------------------------------------------------------------- one run

@dataclass
class Run:
    label: str
    requests: int
    by_endpoint: dict[str, int]
    statuses: dict[str, int]
    records: int
    unchanged: int
    wall: float
    per_stream: dict[str, int] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)


class Tap:
    """The tap against one sandbox: its config and catalog, the STATE it carries from run to run,
    and what every earlier run emitted (to tell unchanged re-sends)."""

    def __init__(self, sandbox: Sandbox, select: list[str] | None, workdir: Path):
        self.sb, self.workdir = sandbox, workdir
        self.config = workdir / "config.json"
        self.config.write_text(json.dumps({"api_key": SANDBOX_KEY, "api_url": sandbox.url}))
        out = subprocess.run([*tap_command(), "--config", str(self.config), "--discover"], capture_output=True,
                             check=True, env=self.env())
        catalog = orjson.loads(out.stdout)
        names = {e["tap_stream_id"] for e in catalog["streams"]}
        self.discovered = sorted(names)
        missing = sorted(set(select or []) - names)
        if missing:
            raise SystemExit(f"not in the discovered catalog: {', '.join(missing)}")
        for entry in catalog["streams"]:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"]["selected"] = select is None or entry["tap_stream_id"] in select
        self.selected = sorted(e["tap_stream_id"] for e in catalog["streams"]
                               if select is None or e["tap_stream_id"] in select)
        self.catalog = workdir / "catalog.json"
        self.catalog.write_bytes(orjson.dumps(catalog))
        self.state: dict | None = None
        self.seen: dict[tuple, bytes] = {}
        self.runs = 0

    @staticmethod
    def env() -> dict:
        return {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(self, label: str) -> Run:
        self.runs += 1
        cmd = [*tap_command(), "--config", str(self.config), "--catalog", str(self.catalog)]
        if self.state is not None:
            state_path = self.workdir / f"state{self.runs}.json"
            state_path.write_text(json.dumps(self.state))
            cmd += ["--state", str(state_path)]
        out_path, err_path = self.workdir / f"out{self.runs}.jsonl", self.workdir / f"err{self.runs}.txt"
        self.sb.reset_stats()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            t0 = time.perf_counter()
            code = subprocess.run(cmd, stdout=out, stderr=err, env=self.env()).returncode
            wall = time.perf_counter() - t0
        stats = self.sb.stats()
        if code != 0:
            raise SystemExit(f"{label}: tap-stripe exited {code}:\n{err_path.read_text()[-3000:]}")
        by_endpoint = {ep: sum(counts.values()) for ep, counts in stats["by_endpoint"].items()}
        run = Run(label, stats["total"], by_endpoint, dict(stats["by_status"]), 0, 0, wall)
        keys: dict[str, list[str]] = {}
        with open(out_path, "rb") as lines:
            for line in lines:
                msg = orjson.loads(line)
                kind = msg.get("type")
                if kind == "SCHEMA":
                    keys[msg["stream"]] = msg.get("key_properties") or []
                elif kind == "STATE":
                    self.state = msg["value"]
                elif kind == "RECORD":
                    stream, record = msg["stream"], msg["record"]
                    run.records += 1
                    run.per_stream[stream] = run.per_stream.get(stream, 0) + 1
                    body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
                    key = (stream, *(json.dumps(record.get(k)) for k in keys.get(stream, []))) \
                        if keys.get(stream) else (stream, hashlib.sha1(body).hexdigest())
                    if self.seen.get(key) == body:
                        run.unchanged += 1
                    self.seen[key] = body
                    marker = (record.get("metadata") or {}).get("bench") if isinstance(record, dict) else None
                    if marker:
                        run.markers.add(marker)
        return run


# ----------------------------------------------------------------------------- printing

def print_table(title: str, runs: list[Run], verbose: bool) -> None:
    print(f"\n{title}")
    print(f"  {'run':<34}{'requests':>9}{'records':>9}{'unchanged':>11}{'seconds':>9}")
    for r in runs:
        print(f"  {r.label:<34}{r.requests:>9,}{r.records:>9,}{r.unchanged:>11,}{r.wall:>9.1f}")
    if verbose:
        for r in runs:
            print(f"  {r.label}: requests per endpoint (statuses {r.statuses})")
            for ep, n in sorted(r.by_endpoint.items(), key=lambda kv: (-kv[1], kv[0])):
                print(f"    {n:>7,}  {ep}")
            print(f"  {r.label}: records per stream")
            for stream, n in sorted(r.per_stream.items()):
                print(f"    {n:>7,}  {stream}")


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


# ----------------------------------------------------------------------------- scenario 1

def volumes_for(n: int) -> dict[str, int]:
    return {"customers": n, "charges": n, "subscriptions": n, "invoices": n, "balance_transactions": 2 * n}


def oldest(sb: Sandbox, stream: str) -> list[dict]:
    return sorted(sb.truth(stream), key=lambda o: (o.get("created") or 0, o["id"]))


def make_changes(sb: Sandbox, k: int, seconds: int, tag: str) -> dict[str, int]:
    """k changes spread evenly over the next `seconds` of the sandbox's clock (which ends there)."""
    customers, invoices = oldest(sb, "customers"), oldest(sb, "invoices")
    done: dict[str, int] = {}
    start = sb.now
    for i in range(k):
        sb.set_clock(start + (i + 1) * seconds // (k + 1))
        kind = CHANGE_CYCLE[i % len(CHANGE_CYCLE)]
        mark = {"metadata": {"bench": f"{tag}-{i}"}}
        customer = customers[i % len(customers)]["id"]  # the oldest customers first
        if kind == "customer_update":
            sb.update("customers", customer, mark)
        elif kind == "tax_id_added":
            sb.create("customer_tax_ids", {"type": "eu_vat", "value": f"DE{100000000 + i}", **mark}, parent=customer)
        elif kind == "balance_transaction_added":
            sb.create("customer_balance_transactions", {"amount": -500, "description": "goodwill credit", **mark},
                      parent=customer)
        elif kind == "invoice_update":
            sb.update("invoices", invoices[i % len(invoices)]["id"], mark)
        elif kind == "new_charge":
            sb.create("charges", mark)
        done[kind] = done.get(kind, 0) + 1
    sb.set_clock(start + seconds)
    return done


def scenario_account(n: int, k: int, verbose: bool, latency: tuple[float, float] = (0, 0)) -> list[Run]:
    with Sandbox(seed=1, volumes=volumes_for(n), now=SANDBOX_NOW, history_days=365, latency_ms=latency[0],
                 jitter_ms=latency[1]) as sb:
        tap = Tap(sb, TOP_LEVEL + CHILDREN, Path(tempfile.mkdtemp(prefix=f"tap-cost-{n}-")))
        runs = [tap.run("(a) first load")]
        sb.advance(120)
        runs.append(tap.run("(b) quiet, 2 min later"))
        done = make_changes(sb, k, 120, f"n{n}")
        runs.append(tap.run(f"(c) after {k} changes, 2 min later"))
    what = ", ".join(f"{v} {kind.replace('_', ' ')}" for kind, v in done.items())
    at = f"; every response after {latency[0]:g} + up to {latency[1]:g} ms" if any(latency) else ""
    print_table(f"N = {n:,}: {n:,} customers, charges, subscriptions, invoices; {2 * n:,} balance transactions "
                f"(changes: {what}){at}", runs, verbose)
    return runs


def targets_account(results: dict[int, list[Run]], k: int) -> None:
    limit = 2 * len(TOP_LEVEL) + 4
    print(f"\nTargets (selected top-level streams counted: {len(TOP_LEVEL)}, {', '.join(TOP_LEVEL)}; "
          f"their {len(CHILDREN)} children not counted):")
    for n, (first, quiet, changed) in results.items():
        print(f"  N = {n:,}: quiet {quiet.requests:,} ≤ 2 × {len(TOP_LEVEL)} + 4 = {limit}: "
              f"{verdict(quiet.requests <= limit)}")
        print(f"  N = {n:,}: after {k} changes {changed.requests:,} ≤ quiet + 4 × {k} = {quiet.requests + 4 * k:,}: "
              f"{verdict(changed.requests <= quiet.requests + 4 * k)}")
        base = BASELINE_FIRST_LOAD.get(n)
        if base is None:
            print(f"  N = {n:,}: first load {first.requests:,} requests (no baseline recorded for this N)")
        else:
            print(f"  N = {n:,}: first load {first.requests:,} ≤ baseline {base:,}: {verdict(first.requests <= base)}")
    if len(results) > 1:
        quiets = {n: runs[1].requests for n, runs in results.items()}
        spread = max(quiets.values()) - min(quiets.values())
        print(f"  quiet at {' and '.join(f'{n:,}' for n in quiets)}: {' / '.join(f'{q:,}' for q in quiets.values())}, "
              f"within 3 of each other: {verdict(spread <= 3)}")


# ----------------------------------------------------------------------------- scenario 2

def scenario_demo(verbose: bool) -> None:
    # Report streams download their results from `files_url` (files.stripe.com by default), which
    # default settings cannot point at the sandbox: every other stream is selected.
    lists = sorted(name for name, spec in SPECS.items() if spec.kind != "report")
    with Sandbox(seed=42, scale=0.3, history_days=180, now=SANDBOX_NOW) as sb:
        tap = Tap(sb, lists, Path(tempfile.mkdtemp(prefix="tap-cost-demo-")))
        runs = [tap.run("first load")]
        sb.advance(60)
        runs.append(tap.run("quiet, 1 min later"))
    print_table(f"Demo data (seed 42, scale 0.3, 180 days): all {len(tap.selected)} list streams of the "
                f"discovered catalog selected ({len(tap.discovered) - len(tap.selected)} report streams not)",
                runs, verbose)
    limit = 2 * DEMO_LIST_STREAMS + 4
    quiet = runs[1].requests
    print(f"  target: quiet {quiet:,} ≤ 2 × {DEMO_LIST_STREAMS} + 4 = {limit}: {verdict(quiet <= limit)}")


# ----------------------------------------------------------------------------- scenario 3

def scenario_freshness(n: int, minutes: int, rate: float, verbose: bool) -> None:
    with Sandbox(seed=1, volumes=volumes_for(n), now=SANDBOX_NOW, history_days=365) as sb:
        tap = Tap(sb, TOP_LEVEL + CHILDREN, Path(tempfile.mkdtemp(prefix=f"tap-fresh-{n}-")))
        runs = [tap.run("first load")]
        customers, invoices = oldest(sb, "customers"), oldest(sb, "invoices")
        subscriptions = oldest(sb, "subscriptions")
        pending: dict[str, tuple[str, int, int]] = {}  # marker -> (object, seq, sandbox time of the change)
        delays: list[float] = []
        seq, overlaps, start = 0, 0, sb.now
        for minute in range(1, minutes + 1):
            per_minute = int(rate * 60)
            for j in range(per_minute):
                at = start + (minute - 1) * 60 + (j * 60) // per_minute
                sb.set_clock(at)
                mark = {"metadata": {"bench": f"f{seq}"}}
                kind = j % 4  # customer updates, new charges, invoice and subscription updates in turn
                if kind == 0:
                    obj = sb.update("customers", customers[seq % len(customers)]["id"], mark)
                elif kind == 1:
                    obj = sb.create("charges", mark)
                elif kind == 2:
                    obj = sb.update("invoices", invoices[seq % len(invoices)]["id"], mark)
                else:
                    obj = sb.update("subscriptions", subscriptions[seq % len(subscriptions)]["id"], mark)
                pending[f"f{seq}"] = (obj["id"], seq, at)
                seq += 1
            sb.set_clock(start + minute * 60)
            run = tap.run(f"minute {minute}")
            runs.append(run)
            end = sb.now + run.wall
            # A delivered marker also delivers the earlier changes of its object it overwrote.
            newest: dict[str, int] = {}
            for marker in run.markers & pending.keys():
                oid, s, _ = pending[marker]
                newest[oid] = max(newest.get(oid, -1), s)
            for marker, (oid, s, at) in list(pending.items()):
                if s <= newest.get(oid, -1):
                    delays.append(end - at)
                    del pending[marker]
            overlaps += run.wall > 60
    print_table(f"Freshness, N = {n:,}: a run every simulated minute for {minutes} min, changes at {rate:g}/s",
                runs, verbose)
    print(f"  changes {seq:,}; delivered {len(delays):,}; not delivered by the last run {len(pending):,}")
    if delays:
        print(f"  delay from change to the end of the run that delivered it: max {max(delays):.0f} s, "
              f"mean {sum(delays) / len(delays):.0f} s")
    print(f"  runs longer than the minute between starts (would overlap): {overlaps} of {minutes}")


# ----------------------------------------------------------------------------- main

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--n", type=int, default=300, help="account size N (default 300)")
    p.add_argument("--scales", default="1,10", help="multiples of N to measure (default 1,10: N and 10N)")
    p.add_argument("--k", type=int, default=11, help="changes before run (c) (default 11)")
    p.add_argument("--verbose", action="store_true", help="requests per endpoint and records per stream")
    p.add_argument("--demo", action="store_true", help="the demo's data, every stream selected (only this)")
    p.add_argument("--freshness", action="store_true", help="a run every simulated minute (only this)")
    p.add_argument("--minutes", type=int, default=5, help="--freshness: simulated minutes (default 5)")
    p.add_argument("--rate", type=float, default=10, help="--freshness: changes per sandbox second (default 10)")
    p.add_argument("--latency-ms", type=float, default=0,
                   help="scenario 1: the sandbox answers each request after this (default 0)")
    p.add_argument("--jitter-ms", type=float, default=0,
                   help="scenario 1: and after up to this much more, uniformly (default 0)")
    p.add_argument("--all", action="store_true", help="scenario 1, then --demo, then --freshness")
    a = p.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each table as soon as it is measured
    rps, per_endpoint = default_limits(SANDBOX_KEY)
    print(f"machine: {machine()}; nproc {os.cpu_count()}; load average {os.getloadavg()[0]:.2f}")
    print(f"tap-stripe with default settings (config: api_key, api_url): key {SANDBOX_KEY} → "
          f"{rps:g} requests/s, {per_endpoint:g}/s per endpoint")
    account = a.all or not (a.demo or a.freshness)
    if account:
        results = {}
        for scale in (int(s) for s in a.scales.split(",")):
            n = a.n * scale
            results[n] = scenario_account(n, a.k, a.verbose, (a.latency_ms, a.jitter_ms))
        targets_account(results, a.k)
    if a.demo or a.all:
        scenario_demo(a.verbose)
    if a.freshness or a.all:
        scenario_freshness(a.n, a.minutes, a.rate, a.verbose)


if __name__ == "__main__":
    main()
