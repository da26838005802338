"""A first load killed again and again, as an orchestrator with a task timeout shorter than the
load kills it: how many runs it takes and how many records it writes in all.

The sandbox (a process of its own, 20,000 charges over 200 days by default) is read by the tap's
command line with a 20 requests/s budget per endpoint (Stripe's test mode, as the tap defaults to
for a test key); one uninterrupted run gives the time and records a first load needs. Then runs,
each resumed from the last STATE the previous one wrote, are sent SIGKILL (or SIGTERM with
`--signal TERM`) `--every` seconds after they start, until one finishes. Prints the runs, the
records written against those needed, and whether the targets hold: at most one run more than
the uninterrupted time allows (ceil(time / every) + 1) and at most 1.5× the records.

    python benchmarks/killed_load.py                 # 20,000 charges, SIGKILL every 4 s
    python benchmarks/killed_load.py --signal TERM --every 3 --charges 10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import PY, SandboxProcess, catalog_for, machine, tap_config


def run_once(workdir: Path, state: dict | None, kill_after: float | None, sig: int) -> tuple[int, dict | None, int]:
    """One run; (records written, its last STATE or None, exit code)."""
    cmd = [PY, "-m", "tap_stripe", "--config", str(workdir / "config.json"), "--catalog", str(workdir / "catalog.json")]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        cmd += ["--state", str(workdir / "state.json")]
    out_path = workdir / "out.jsonl"
    with open(out_path, "wb") as out, open(workdir / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=workdir, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            code = proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(sig)
            code = proc.wait()
    records, last = 0, None
    for line in out_path.read_bytes().splitlines():
        if not line.endswith(b"}"):
            continue  # a line the kill cut: a target never sees it
        if line.startswith(b'{"type":"RECORD"'):
            records += 1
        elif line.startswith(b'{"type":"STATE"'):
            last = json.loads(line)["value"]
    return records, last, code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charges", type=int, default=20_000)
    parser.add_argument("--every", type=float, default=4.0, help="seconds from a run's start to its kill")
    parser.add_argument("--signal", choices=("KILL", "TERM"), default="KILL")
    args = parser.parse_args(argv)
    sig = getattr(signal, f"SIG{args.signal}")
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}")
    with SandboxProcess({"charges": args.charges}, history_days=200) as sandbox, \
            tempfile.TemporaryDirectory(prefix="killed-load-") as tmp:
        workdir = Path(tmp)
        config = tap_config(sandbox.url, max_requests_per_second=20, max_requests_per_second_per_endpoint=20)
        (workdir / "config.json").write_text(json.dumps(config))
        (workdir / "catalog.json").write_text(json.dumps(catalog_for(["charges"])))
        began = time.perf_counter()
        needed, _, code = run_once(workdir, None, None, sig)
        alone = time.perf_counter() - began
        assert code == 0, (workdir / "stderr.txt").read_text()[-2000:]
        print(f"uninterrupted: {needed:,} records in {alone:.1f} s")
        allowed = math.ceil(alone / args.every) + 1
        state, written, runs = None, 0, 0
        while runs < 5 * allowed:
            runs += 1
            records, last, code = run_once(workdir, state, args.every, sig)
            written += records
            state = last or state
            print(f"  run {runs}: {records:,} records, exit {code}")
            if code == 0:
                break
        ratio = written / max(1, needed)
        print(f"SIG{args.signal} every {args.every:g} s: {runs} runs (at most {allowed}: "
              f"{'met' if code == 0 and runs <= allowed else 'NOT met'}), {written:,} records for {needed:,} "
              f"({ratio:.2f}x, at most 1.5x: {'met' if ratio <= 1.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
