"""API-bound throughput: five large streams through Stripe-like latency and rate limits.

The sandbox (its own process) answers every request after a latency (by default each of
100 ± 20, 250 ± 50, 600 ± 100 and 1000 ± 150 ms in turn: a base plus uniform jitter) and
allows 100 requests/s per account and 25/s per endpoint, answering 429 beyond. The tap reads
charges and balance_transactions (200,000 each), payment_intents (100,000), customers and
invoices (50,000 each) with `full_resync_streams: []`, told only the account's budget
(`max_requests_per_second` 96, `..._per_endpoint` 24: just under the sandbox's limits);
`max_workers` is not set, so the tap sizes its concurrency itself (`--workers N` sets it).

The bound is the shortest time the limits allow:
    max(all pages ÷ 100, max over streams of that stream's pages ÷ 25)
computed twice: with the *minimum* pages (records ÷ 100 rounded up, per stream; the
headline figure) and with the pages the tap actually fetched (its created-time windows
cost some partial pages).

Then the same five streams with `max_workers: 1` (one request at a time: the sequential
equivalent) on 1/20 of the volume; its records/s is extrapolated to the full volume to give
the speed-up.

  .venv/bin/python benchmarks/throughput.py                       # 600,000 records at each latency
  .venv/bin/python benchmarks/throughput.py --quick --latencies 600   # 1/10 of the volume, one latency
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SandboxProcess, machine, pages_min, run_tap, stats_by_status, tap_config

VOLUMES = {"charges": 200_000, "balance_transactions": 200_000, "payment_intents": 100_000,
           "customers": 50_000, "invoices": 50_000}
SANDBOX_RPS, SANDBOX_ENDPOINT_RPS = 100, 25
# mean latency (ms) -> (base, uniform jitter): base + jitter/2 is the mean
LATENCIES = {100: (80, 40), 250: (200, 100), 600: (500, 200), 1000: (850, 300)}


def bound_seconds(pages: dict[str, int]) -> float:
    return max(sum(pages.values()) / SANDBOX_RPS, max(pages.values()) / SANDBOX_ENDPOINT_RPS)


def sync(sb: SandboxProcess, streams: list[str], **settings):
    sb.reset_stats()
    c0 = sb.cpu_seconds()
    result = run_tap(tap_config(sb.url, full_resync_streams=[], **settings), streams)
    result.sandbox_cpu = sb.cpu_seconds() - c0
    result.sandbox_stats = sb.stats()
    return result


def report(label: str, r, volumes: dict[str, int]) -> None:
    streams = r.summary["streams"]
    status = stats_by_status(r.sandbox_stats)
    total_requests = r.sandbox_stats["total"]
    min_pages = {s: pages_min(n) for s, n in volumes.items()}
    got_pages = {s: streams.get(s, {}).get("pages", 0) for s in volumes}
    b_min, b_got = bound_seconds(min_pages), bound_seconds(got_pages)
    print(f"\n{label}")
    print(f"  {'stream':<22}{'records':>9}{'min pages':>11}{'pages':>8}{'requests':>10}{'429s':>6}{'retries':>9}")
    for s in volumes:
        d = streams.get(s, {})
        print(f"  {s:<22}{d.get('records', 0):>9,}{min_pages[s]:>11,}{d.get('pages', 0):>8,}"
              f"{d.get('requests', 0):>10,}{d.get('throttled', 0):>6}{d.get('retries', 0):>9}")
    print(f"  records {r.records:,} in {r.wall:.1f} s wall: {r.records / r.wall:,.0f} records/s; "
          f"{total_requests / r.wall:.1f} requests/s at the sandbox ({total_requests:,} requests, "
          f"{status.get('429', 0)} answered 429; tap summary: {r.total('requests'):,} requests, "
          f"{r.total('throttled')} 429s, {r.total('retries')} retries)")
    print(f"  bound with minimum pages ({sum(min_pages.values()):,} pages): {b_min:.1f} s "
          f"→ run at {b_min / r.wall:.1%} of the bound")
    print(f"  bound with the tap's pages ({sum(got_pages.values()):,} pages): {b_got:.1f} s "
          f"→ run at {b_got / r.wall:.1%} of it")
    print(f"  tap CPU {r.cpu:.1f} s ({r.cpu / r.wall:.0%} of one core), peak RSS {r.maxrss_mb:.0f} MB; "
          f"sandbox CPU {r.sandbox_cpu / r.wall:.0%} of one core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1/10 of the volume")
    ap.add_argument("--scale", type=float, default=None, help="multiply every stream's volume")
    ap.add_argument("--workers", type=int, default=None, help="set max_workers (default: not set)")
    ap.add_argument("--latencies", default=",".join(map(str, LATENCIES)), help="mean latencies in ms, of " +
                    ", ".join(map(str, LATENCIES)))
    ap.add_argument("--sequential-fraction", type=float, default=1 / 20,
                    help="volume of the max_workers=1 run, as a fraction of the main run's")
    ap.add_argument("--sequential", action="store_true", help="also the max_workers=1 run (at 250 ms)")
    ap.add_argument("--limits", default="96/24", help="client-side limits: global/endpoint")
    a = ap.parse_args()
    scale = a.scale or (0.1 if a.quick else 1.0)
    volumes = {s: int(n * scale) for s, n in VOLUMES.items()}
    streams = list(volumes)
    rps, ep = (float(x) for x in a.limits.split("/"))
    workers = {"max_workers": a.workers} if a.workers else {}
    print(f"machine: {machine()}")
    print(f"sandbox: {SANDBOX_RPS} requests/s global, {SANDBOX_ENDPOINT_RPS}/s per endpoint; volumes {volumes}; "
          f"tap told max_requests_per_second={rps:g}, max_requests_per_second_per_endpoint={ep:g}"
          + (f", max_workers={a.workers}" if a.workers else ", max_workers not set"))
    shares = {}
    for mean in (int(x) for x in a.latencies.split(",")):
        base, jitter = LATENCIES[mean]
        with SandboxProcess(volumes, latency_ms=base, jitter_ms=jitter, rps=SANDBOX_RPS,
                            endpoint_rps=SANDBOX_ENDPOINT_RPS) as sb:
            r = sync(sb, streams, max_requests_per_second=rps, max_requests_per_second_per_endpoint=ep, **workers)
        report(f"latency {mean} ± {jitter // 2} ms", r, volumes)
        min_pages = {s: pages_min(n) for s, n in volumes.items()}
        shares[mean] = (bound_seconds(min_pages) / r.wall, r.maxrss_mb, r.total("throttled"))
    print("\nshare of the rate-limit bound (minimum pages), by latency:")
    for mean, (share, rss, throttled) in shares.items():
        print(f"  {mean:>5} ms: {share:.2f}   peak RSS {rss:.0f} MB, {throttled} answered 429")

    if not a.sequential:
        return
    base, jitter = LATENCIES[250]
    small = {s: max(100, int(n * a.sequential_fraction)) for s, n in volumes.items()}
    with SandboxProcess(small, latency_ms=base, jitter_ms=jitter, rps=SANDBOX_RPS,
                        endpoint_rps=SANDBOX_ENDPOINT_RPS) as sb:
        seq = sync(sb, streams, max_workers=1, max_requests_per_second=SANDBOX_RPS,
                   max_requests_per_second_per_endpoint=SANDBOX_ENDPOINT_RPS)
    report(f"sequential equivalent: max_workers=1 on {sum(small.values()):,} records {small}", seq, small)
    print(f"  sequential: {seq.records / seq.wall:,.0f} records/s")


if __name__ == "__main__":
    main()
