"""Soak the tap with simulated histories (tests/simulation.py): many seeds, or for a time.

    python scripts/soak.py                       # seeds 1..20
    python scripts/soak.py --seeds 200 --first 1000
    python scripts/soak.py --minutes 30          # as many seeds as fit in 30 minutes
    python scripts/soak.py --seeds 50 --shrink 300   # shrink each failing history (≤300 s each)
    python scripts/soak.py --replay '<History JSON from a failure message>'

Prints, at the end: seeds run, histories, runs, tap processes, kills, changes checked, rows
compared, mismatches (with the seeds of any, and what kind). Exits 1 if any history failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import simulation as sim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=None,
                        help="how many seeds (default 20, or unbounded with --minutes)")
    parser.add_argument("--first", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--minutes", type=float, default=None, help="stop starting new seeds after this long")
    parser.add_argument("--max-steps", type=int, default=22, help="longest history (default 22 steps)")
    parser.add_argument("--shrink", type=float, default=0, metavar="SECONDS",
                        help="shrink each failing history for up to this long (default: no shrinking)")
    parser.add_argument("--shrink-for", metavar="CATEGORY", choices=sim.CATEGORIES,
                        help="shrink while this kind of mismatch remains (default: each history's first kind)")
    parser.add_argument("--replay", metavar="JSON", help="run one history given as JSON (see a failure message)")
    parser.add_argument("--keep", metavar="DIR", help="keep each history's files (configs, states, stderr) here")
    parser.add_argument("--no-fork", action="store_true", help="start every run with python -m tap_stripe")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each failing history's full report")
    args = parser.parse_args(argv)

    runner = sim.TapRunner(fork=not args.no_fork)
    try:
        if args.replay:
            history = sim.History.from_json(args.replay)
            outcome = sim.simulate(history, runner=runner, keep=Path(args.keep) if args.keep else None)
            print(outcome.report(limit=60))
            return 0 if outcome.ok else 1
        return soak(args, runner)
    finally:
        runner.close()


def soak(args, runner: sim.TapRunner) -> int:
    seeds = args.seeds if args.seeds is not None else (None if args.minutes else 20)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    began = time.monotonic()
    totals = Counter()
    failures: list[tuple[int, list[str], sim.Outcome, sim.History | None]] = []
    seed = args.first
    while (seeds is None or seed < args.first + seeds) and (deadline is None or time.monotonic() < deadline):
        history = sim.generate(seed, max_steps=args.max_steps)
        keep = Path(args.keep) / f"seed{seed}" if args.keep else None
        outcome = sim.simulate(history, runner=runner, keep=keep)
        totals.update(seeds=1, histories=1, steps=len(history.steps), runs=outcome.runs,
                      processes=outcome.processes, kills=outcome.kills, changes=outcome.changes,
                      rows=outcome.rows_checked, allowed=outcome.allowed_extra)
        for needed, written, loop_runs, _, finished, measured in outcome.progress:
            prefix = "" if measured else "fast_"  # SIGKILLs closer than a STATE's span: no progress promised
            totals.update({f"{prefix}loops": 1, f"{prefix}loop_runs": loop_runs, f"{prefix}needed": needed,
                           f"{prefix}written": written, f"{prefix}unfinished": not finished})
        status = "ok" if outcome.ok else "MISMATCH " + ", ".join(outcome.categories)
        print(f"seed {seed}: {len(history.steps)} steps, {outcome.runs} runs, {outcome.processes} processes, "
              f"{outcome.changes} changes, {outcome.seconds:.1f}s: {status}", flush=True)
        shrunk = None
        if not outcome.ok:
            if args.verbose:
                print(outcome.report(), flush=True)
            if args.shrink and (not args.shrink_for or args.shrink_for in outcome.categories):
                shrunk = shrink(history, args.shrink_for or outcome.categories[0], runner, args.shrink)
            failures.append((seed, outcome.categories, outcome, shrunk))
        seed += 1
    elapsed = time.monotonic() - began
    print()
    print(f"seeds run:        {totals['seeds']} ({args.first}..{seed - 1}) in {elapsed:.0f}s")
    print(f"histories:        {totals['histories']} ({totals['steps']} steps)")
    print(f"runs:             {totals['runs']} ({totals['processes']} tap processes, {totals['kills']} killed)")
    print(f"changes checked:  {totals['changes']} ({totals['rows']} rows compared with the sandbox at the end; "
          f"{totals['allowed']} rows excused by the documented limits: 30-day event retention with several "
          "accounts, children of a deleted object, children removed beyond the first embedded page, full tables "
          "deleted without an event with several accounts)")
    for prefix, what in (("", "killed every K records (SIGTERM, or SIGKILL at least 1,000 apart)"),
                         ("fast_", "killed where no progress is promised (SIGKILL less than 1,000 records apart, or "
                                   "kills closer than what each run writes again by its settings)")):
        if totals[f"{prefix}loops"]:
            print(f"kill loops:       {totals[f'{prefix}loops']} first loads {what}: {totals[f'{prefix}loop_runs']} "
                  f"runs, {totals[f'{prefix}written']} records written for {totals[f'{prefix}needed']} needed "
                  f"({totals[f'{prefix}written'] / max(1, totals[f'{prefix}needed']):.2f}x), "
                  f"{totals[f'{prefix}unfinished']} never finished")
    seeds_failed = ", ".join(str(f[0]) for f in failures)
    print(f"mismatches:       {len(failures)}" + (f" — seeds {seeds_failed}" if failures else ""))
    kinds = Counter(c for _, categories, _, _ in failures for c in categories)
    for category in sim.CATEGORIES:
        if kinds[category]:
            seeds_of = [str(s) for s, categories, _, _ in failures if category in categories]
            print(f"  {category:20s} {kinds[category]:3d} histories: seeds {', '.join(seeds_of)}")
    for seed_, _, outcome, shrunk in failures:
        if shrunk is not None:
            small = sim.simulate(shrunk, runner=runner)
            print(f"\nseed {seed_} shrunk from {len(outcome.history.steps)} to {len(shrunk.steps)} steps:")
            print(small.report() if not small.ok else repr(shrunk) + "\n(passed when run again: a race)")
    return 1 if failures else 0


def shrink(history: sim.History, wanted: str, runner: sim.TapRunner, budget: float) -> sim.History:
    """Shrink while the history keeps failing with `wanted` among its kinds of mismatch."""

    def fails(candidate: sim.History) -> bool:
        result = sim.simulate(candidate, runner=runner)
        return wanted in result.categories

    print(f"  shrinking seed {history.seed} ({wanted}) for up to {budget:.0f}s", flush=True)
    return sim.shrink(history, fails, budget=budget, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    sys.exit(main())
