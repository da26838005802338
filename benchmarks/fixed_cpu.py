"""Fixed CPU of a run, and the marginal CPU of a record: what a tap scheduled every few
minutes pays each time, beyond its records.

The sandbox runs in its own process, without latency or rate limits, loaded with plain
charges (the sandbox's charge objects, ~2.2 KB each: the RECORD lines the tap writes are
measured on its stdout and printed as bytes per record). The tap runs as the installed
`tap-stripe` command with `--config … --catalog <the discovered catalog, only charges
selected>`, as an orchestrator would run it, and its CPU (user + sys of all its threads)
is its own rusage, read with `os.wait4` (`common.run_process`).

Printed, each the minimum over `--repeat` repetitions (the machine has 2 cores shared with
other jobs, so a run is only ever slowed, never sped up, by them):

- start-up: `tap-stripe --about`, and a sync whose catalog selects no stream;
- `--discover`: wall time and CPU;
- a one-stream sync of 5,000 and of 60,000 charges; the marginal CPU per record is the
  difference of the two divided by the difference of their records, and the fixed CPU of a
  one-stream run is the 5,000-charge run's CPU less 5,000 marginal records (the line
  through the two runs, extrapolated to 0 records).

Python's bytecode cache: an installed tap has its modules compiled (pip writes the `.pyc`
files), but this project's environment sets PYTHONDONTWRITEBYTECODE, which would make every
run compile the tap's own modules from source (~50 ms). The tap runs here with the cache in
a directory of its own (PYTHONPYCACHEPREFIX, outside the work tree), filled by a first,
unmeasured run; `--no-bytecode-cache` measures without it.

No memory figures: a child's `ru_maxrss` on Linux also counts the parent's memory at the fork
before its exec, and this process holds the catalog by then.

Targets (issue #16): fixed CPU of a one-stream run ≤ 0.6 s, `--discover` < 1 s,
marginal ≤ 30 µs per 2 KB record.

  .venv/bin/python benchmarks/fixed_cpu.py               # 5,000 and 60,000 charges, 5 repetitions
  .venv/bin/python benchmarks/fixed_cpu.py --quick       # 2 repetitions
  .venv/bin/python benchmarks/fixed_cpu.py --profile     # also cProfile of the 5,000-charge run
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import NO_LIMITS, PY, ROOT, SandboxProcess, TapResult, machine, run_process, run_tap, tap_config

TAP = [str(Path(PY).parent / "tap-stripe")]
ENV = {"PYTHONPATH": str(ROOT)}


def config(url: str, workers: int) -> dict:
    """`workers` 0: max_workers not set (the tap sizes its concurrency itself)."""
    return tap_config(url, **({"max_workers": workers} if workers else {}), full_resync_streams=[], **NO_LIMITS)


def best(runs: list[TapResult]) -> TapResult:
    return min(runs, key=lambda r: r.cpu)


def run_command(args: list[str], cfg: dict | None = None) -> TapResult:
    """`tap-stripe ARGS` (with `--config` when `cfg`), its own rusage; must exit 0."""
    work = Path(tempfile.mkdtemp(prefix="tap-fixed-"))
    cmd = TAP + list(args)
    if cfg is not None:
        (work / "config.json").write_text(json.dumps(cfg))
        cmd += ["--config", str(work / "config.json")]
    result = run_process(cmd, cwd=work, env=ENV)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}")
    return result


def sync(cfg: dict, streams: list[str]) -> TapResult:
    return run_tap(cfg, streams, command=TAP)


def profile(url: str, workers: int, top: int = 30) -> None:
    """cProfile of the main thread of one sync (worker threads are not profiled)."""
    work = Path(tempfile.mkdtemp(prefix="tap-fixed-profile-"))
    out = work / "profile.pstats"
    run_tap(config(url, workers), ["charges"], workdir=work,
            command=[PY, "-m", "cProfile", "-o", str(out), "-m", "tap_stripe"])
    print(f"\ncProfile of a 5,000-charge sync (main thread), {out}:")
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 repetitions")
    ap.add_argument("--sizes", default="5000,60000", help="the two sandbox sizes (charges)")
    ap.add_argument("--workers", type=int, default=0, help="max_workers of the tap (default 0: not set)")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions of each measurement (the minimum counts)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--no-bytecode-cache", action="store_true", help="compile the tap's modules on every run")
    a = ap.parse_args()
    if not a.no_bytecode_cache:  # children (the tap, the sandbox) inherit these
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "tap-stripe-bench-pycache")
        run_command(["--about"])  # fills the cache
    repeat = a.repeat or (2 if a.quick else 5)
    small, large = (int(s) for s in a.sizes.split(","))
    print(f"machine: {machine()}")
    print(f"tap: {TAP[0]}, max_workers={a.workers}, sandbox without latency or limits (own process); "
          f"every figure is the minimum of {repeat} repetitions (the 2 cores are shared with other jobs); "
          f"bytecode cache {'off' if a.no_bytecode_cache else 'on'}")

    about = best([run_command(["--about"]) for _ in range(repeat)])
    print(f"\nstart-up, `tap-stripe --about`:        {about.cpu:6.3f} s CPU  {about.wall:6.3f} s wall")

    results: dict[int, TapResult] = {}
    for n in (small, large):
        with SandboxProcess({"charges": n}) as sb:
            cfg = config(sb.url, a.workers)
            if n == small:
                empty = best([sync(cfg, []) for _ in range(repeat)])
                print(f"start-up, sync with nothing selected:  {empty.cpu:6.3f} s CPU  {empty.wall:6.3f} s wall")
                discover = [run_command(["--discover"], cfg) for _ in range(repeat)]
                d = best(discover)
                print(f"`tap-stripe --discover`:               {d.cpu:6.3f} s CPU  "
                      f"{min(r.wall for r in discover):6.3f} s wall  ({d.out_bytes / 1e6:.1f} MB catalog)")
            sync(cfg, ["charges"])  # warm the sandbox (it renders objects lazily)
            runs = [sync(cfg, ["charges"]) for _ in range(repeat)]
            r = best(runs)
            results[n] = r
            print(f"one-stream sync, {r.records:>6,} charges:     {r.cpu:6.3f} s CPU  {r.wall:6.3f} s wall  "
                  f"user {r.user:.3f}  sys {r.sys:.3f}  {r.out_bytes / r.records:,.0f} B/record  "
                  f"(all runs: {', '.join(f'{x.cpu:.3f}' for x in runs)})", flush=True)
            if a.profile and n == small:
                profile(sb.url, a.workers)

    r0, r1 = results[small], results[large]
    marginal = (r1.cpu - r0.cpu) / (r1.records - r0.records)
    fixed = r0.cpu - marginal * r0.records
    print(f"\nmarginal CPU per record: {marginal * 1e6:.1f} µs  (target ≤ 30 µs per 2 KB record: "
          f"{'met' if marginal <= 30e-6 else 'MISSED'})")
    print(f"fixed CPU of a one-stream run (extrapolated to 0 records): {fixed:.3f} s  (target ≤ 0.6 s: "
          f"{'met' if fixed <= 0.6 else 'MISSED'}); of it start-up (--about) {about.cpu:.3f} s")
    print(f"--discover: {min(x.wall for x in discover):.3f} s wall, {d.cpu:.3f} s CPU  (target < 1 s: "
          f"{'met' if min(x.wall for x in discover) < 1 else 'MISSED'})")


if __name__ == "__main__":
    main()
