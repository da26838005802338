"""Scaling with volume: the same charges sync at 100,000 and 1,000,000 records.

The sandbox (its own process) has no latency and no limits; the tap reads charges with the
same settings as `cpu_per_record.py` (~3.1 KB RECORD lines, `expand: {"charges": ["customer"]}`).
Printed per size: wall time per record, CPU per record, and the tap process's peak RSS
(`ru_maxrss` from `os.wait4`), each the best (shortest) of `--repeat` runs, since a 5-second
run on a shared 2-core machine varies by several percent. Targets: time per record within
10% between the sizes; peak RSS ≤ 250 MB at 1,000,000 records.

  .venv/bin/python benchmarks/scaling.py            # 100,000 and 1,000,000 charges
  .venv/bin/python benchmarks/scaling.py --quick    # 20,000 and 200,000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CHARGES_EXPAND, SandboxProcess, charges_config, machine, run_tap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 and 200,000 charges")
    ap.add_argument("--sizes", default=None, help="comma-separated record counts")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="runs per size; the shortest counts")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")] if a.sizes else ([20_000, 200_000] if a.quick
                                                                   else [100_000, 1_000_000])
    print(f"machine: {machine()}")
    print(f"charges, expand {CHARGES_EXPAND}, no latency or limits, tap max_workers={a.workers}")
    print(f"\n{'records':>10}{'wall s':>9}{'µs/record wall':>16}{'records/s':>11}{'µs/record CPU':>15}"
          f"{'peak RSS MB':>13}{'B/record':>10}{'sandbox CPU':>13}")
    # A run that reads ~nothing measures the fixed cost (interpreter, catalog, first requests);
    # time per record is the rest of the run divided by its records.
    with SandboxProcess({"charges": 1}) as sb:
        startup = run_tap(charges_config(sb.url, a.workers), ["charges"]).wall
    print(f"startup (1 record): {startup:.2f} s wall")
    rows = []
    for n in sizes:
        runs = []
        for _ in range(a.repeat):
            with SandboxProcess({"charges": n}) as sb:
                c0 = sb.cpu_seconds()
                r = run_tap(charges_config(sb.url, a.workers), ["charges"])
                runs.append((r.wall, r, sb.cpu_seconds() - c0))
        _, r, sandbox_cpu = min(runs, key=lambda run: run[0])
        rows.append((n, r))
        print(f"{r.records:>10,}{r.wall:>9.1f}{r.wall / r.records * 1e6:>16.1f}{r.records / r.wall:>11,.0f}"
              f"{r.cpu / r.records * 1e6:>15.1f}{r.maxrss_mb:>13.0f}{r.out_bytes / r.records:>10,.0f}"
              f"{sandbox_cpu / r.wall:>12.0%}", flush=True)
    (n0, r0), (n1, r1) = rows[0], rows[-1]
    t0, t1 = (r0.wall - startup) / r0.records, (r1.wall - startup) / r1.records
    print(f"\ntime per record, startup excluded: {t0 * 1e6:.1f} µs at {n0:,}, {t1 * 1e6:.1f} µs at {n1:,}: "
          f"{t1 / t0 - 1:+.1%} ({'within' if abs(t1 / t0 - 1) <= 0.10 else 'OUTSIDE'} the 10% target)")
    print(f"peak RSS at {n1:,}: {r1.maxrss_mb:.0f} MB ({'meets' if r1.maxrss_mb <= 250 else 'MISSES'} the "
          f"250 MB target)")


if __name__ == "__main__":
    main()
