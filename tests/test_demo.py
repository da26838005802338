"""`make demo` (scripts/demo.py) fits on one screen: each run's summary and the tables that landed,
no METRIC lines; the tap's full log is in the file it names, and DEMO_VERBOSE=1 shows it.

`external` tier (tests/conftest.py): the demo installs target-jsonl from PyPI on its first run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT

SCREEN_LINES = 50
METRIC = "METRIC: {"  # the SDK's metric log lines


def run_demo(**env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "DEMO_VERBOSE"}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_the_demo_shows_summaries_and_tables_on_one_screen():
    run_demo()  # the first run may install target-jsonl, which prints its own lines
    proc = run_demo()
    out = proc.stdout + proc.stderr
    assert METRIC not in out
    lines = out.splitlines()
    assert len(lines) <= SCREEN_LINES, out
    assert len(re.findall(r"^succeeded: [\d,]+ records from \d+ streams in [\d.]+ s, [\d,]+ requests$", out, re.M)) == 2
    table = lines.index(next(line for line in lines if line.startswith("Tables in demo-output/")))
    assert lines[table + 1].split() == ["table", "rows", "new", "updated", "deleted"]
    charges = next(line for line in lines if line.strip().startswith("charges "))
    assert re.fullmatch(r"\s+charges\s+\d+\s+\d+\s+0\s+0", charges), charges
    assert "charges: 5 new, 3 updated, 0 deleted" in out
    logs = re.findall(r"demo-output/run-\d\.log", out)
    assert logs == ["demo-output/run-1.log", "demo-output/run-2.log"]
    assert METRIC in (ROOT / logs[0]).read_text()


def test_demo_verbose_shows_the_taps_log():
    proc = run_demo(DEMO_VERBOSE="1")
    assert METRIC in proc.stderr
    assert "demo-output/run-1.log" not in proc.stdout
