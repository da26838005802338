"""CPU per record of the tap process, next to a plain singer-sdk tap with defaults.

The sandbox runs in its own process with no latency and no rate limit, so the tap is bound
by its own CPU. Charges are read with `expand: {"charges": ["customer"]}`, which makes each
emitted RECORD line ~3.1 KB (the sandbox's plain charge is ~2.1 KB); the bytes per record
measured on the tap's stdout are printed. The CPU is the tap process's user+sys, read with
`os.wait4` (its own rusage, all threads), minus a startup run that reads ~0 records (the
same sandbox, a one-second `start_date`, or a one-record sandbox for the SDK tap).

The comparison is `benchmarks/sdk_default_tap.py`: the same stream and schema on
singer-sdk 0.54 with defaults, run as a subprocess the same way.

  .venv/bin/python benchmarks/cpu_per_record.py            # 100,000 charges, max_workers 2, 4, 8
  .venv/bin/python benchmarks/cpu_per_record.py --quick    # 20,000 charges
  .venv/bin/python benchmarks/cpu_per_record.py --profile  # also a py-spy profile of the tap (all threads)
"""

from __future__ import annotations

import argparse
import collections
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CHARGES_EXPAND, PY, ROOT, SANDBOX_KEY, SandboxProcess, charges_config, machine, run_tap

SDK_COMMAND = [PY, str(ROOT / "benchmarks" / "sdk_default_tap.py")]


def sdk_settings(url: str) -> dict:
    return {"api_key": SANDBOX_KEY, "api_url": url, "expand": CHARGES_EXPAND}


def best(runs):
    return min(runs, key=lambda r: r.cpu)


def profile_tap(url: str, workers: int, rate: int = 250) -> None:
    """py-spy (sampling, every thread) of one tap run: self and inclusive time per function."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not installed: pip install py-spy")
        return
    work = Path(tempfile.mkdtemp(prefix="tap-profile-"))
    raw = work / "profile.txt"
    command = [spy, "record", "--gil", "-r", str(rate), "-f", "raw", "-o", str(raw), "--", PY, "-m", "tap_stripe"]
    run_tap(charges_config(url, workers), ["charges"], workdir=work, command=command)
    self_time: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        self_time[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"\npy-spy profile of the tap, max_workers={workers}: {total} samples at {rate}/s "
          f"(--gil: the thread holding the GIL, i.e. Python CPU of every thread); raw stacks in {raw}")
    print("  top self time:")
    for frame, n in self_time.most_common(18):
        print(f"    {n / total:6.1%}  {frame}")
    print("  top inclusive time (tap_stripe / singer_sdk / orjson frames):")
    shown = 0
    for frame, n in inclusive.most_common(200):
        if "tap_stripe" in frame or "singer_sdk" in frame or "requests" in frame or "urllib3" in frame:
            print(f"    {n / total:6.1%}  {frame}")
            shown += 1
            if shown == 22:
                break


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="20,000 charges, one repeat")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--workers", default="2,4,8")
    ap.add_argument("--repeat", type=int, default=None, help="runs per setting; the lowest CPU is kept")
    ap.add_argument("--no-sdk", action="store_true")
    ap.add_argument("--profile", action="store_true", help="py-spy profile of the tap at the first max_workers")
    a = ap.parse_args()
    records = a.records or (20_000 if a.quick else 100_000)
    repeat = a.repeat or (1 if a.quick else 2)
    workers = [int(w) for w in a.workers.split(",")]
    print(f"machine: {machine()}")
    print(f"charges: {records:,}, expand {CHARGES_EXPAND}, sandbox without latency or limits (own process), "
          f"best of {repeat}")

    with SandboxProcess({"charges": 1}) as tiny:
        sdk_start = best([run_tap(sdk_settings(tiny.url), ["charges"], command=SDK_COMMAND, catalog=False)
                          for _ in range(repeat)]) if not a.no_sdk else None
    with SandboxProcess({"charges": records}) as sb:
        # ~0 records: the last second before the sandbox clock.
        start = best([run_tap(charges_config(sb.url, workers[0], start_date="2025-12-31T23:59:59Z"), ["charges"])
                      for _ in range(repeat)])
        print(f"\nstartup (≈0 records): tap {start.cpu:.3f} s CPU ({start.records} records, "
              f"{start.maxrss_mb:.0f} MB RSS)" +
              (f"; sdk default tap {sdk_start.cpu:.3f} s CPU ({sdk_start.records} records)" if sdk_start else ""))
        # Warm the sandbox (it renders objects lazily) so the first measured run is not slower.
        run_tap(charges_config(sb.url, 8), ["charges"])

        header = (f"\n{'tap':<22}{'records':>9}{'B/record':>10}{'wall s':>8}{'records/s':>11}"
                  f"{'CPU s':>8}{'user':>7}{'sys':>6}{'µs/record':>11}{'sandbox CPU':>13}{'RSS MB':>8}")
        print(header)
        rows = []

        def measure(label, settings, **kw):
            runs = []
            for _ in range(repeat):
                c0 = sb.cpu_seconds()
                r = run_tap(settings, ["charges"], **kw)
                r.sandbox_cpu = sb.cpu_seconds() - c0
                runs.append(r)
            r = best(runs)
            base = sdk_start if kw.get("command") else start
            us = (r.cpu - base.cpu) / max(1, r.records - base.records) * 1e6
            rows.append((label, us))
            print(f"{label:<22}{r.records:>9,}{r.out_bytes / r.records:>10,.0f}{r.wall:>8.2f}"
                  f"{r.records / r.wall:>11,.0f}{r.cpu:>8.2f}{r.user:>7.2f}{r.sys:>6.2f}{us:>11.1f}"
                  f"{r.sandbox_cpu / r.wall:>12.0%}{r.maxrss_mb:>8.0f}", flush=True)
            return r

        for w in workers:
            measure(f"tap-stripe w={w}", charges_config(sb.url, w))
        if not a.no_sdk:
            measure("singer-sdk defaults", sdk_settings(sb.url), command=SDK_COMMAND, catalog=False)

        tap_best = min(us for label, us in rows if label.startswith("tap-stripe"))
        print("\nµs/record = (CPU of the run − CPU of the startup run) ÷ records; target: tap ≤ 50 µs/record")
        print(f"tap-stripe best: {tap_best:.1f} µs/record ({'meets' if tap_best <= 50 else 'MISSES'} the target)")
        sdk = [us for label, us in rows if label.startswith("singer-sdk")]
        if sdk:
            print(f"singer-sdk defaults: {sdk[0]:.1f} µs/record → tap-stripe uses {tap_best / sdk[0]:.0%} of it "
                  f"({sdk[0] / tap_best:.1f}× less CPU per record)")
        if a.profile:
            profile_tap(sb.url, workers[0])


if __name__ == "__main__":
    main()
