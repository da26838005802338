"""Shared helpers of the benchmarks: the sandbox in its own process, the tap as a measured child.

Every measurement runs the tap (or the singer-sdk comparison tap) as a subprocess and reads
its own resource usage with `os.wait4`, so the figures are the tap process's alone: the
sandbox runs in another process and the benchmark's stdout reader is this process.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SANDBOX_KEY = "sk_test_sandbox"
SANDBOX_NOW = 1767225600  # 2026-01-01T00:00:00Z


# ----------------------------------------------------------------------------- machine

def machine() -> str:
    """One line describing where the figures were measured."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(row.split()[1]) for row in Path("/proc/meminfo").read_text().splitlines()
                      if row.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    return (f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


# ----------------------------------------------------------------------------- sandbox

class SandboxProcess:
    """`python -m stripe_sandbox` in its own process on an ephemeral port."""

    def __init__(self, volumes: dict[str, int], *, latency_ms: float = 0, jitter_ms: float = 0,
                 rps: float | None = None, endpoint_rps: float | None = None, seed: int = 1,
                 now: int = SANDBOX_NOW, history_days: float = 365):
        cmd = [PY, "-m", "stripe_sandbox", "--port", "0", "--seed", str(seed), "--now", str(now),
               "--volumes", json.dumps(volumes), "--history-days", str(history_days),
               "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
        if rps:
            cmd += ["--rps", str(rps)]
        if endpoint_rps:
            cmd += ["--endpoint-rps", str(endpoint_rps)]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.close()
            raise RuntimeError(f"sandbox did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].split()[0]
        self.http = requests.Session()

    def control(self, cmd: str) -> Any:
        return self.http.get(f"{self.url}/_sandbox/{cmd}", timeout=30).json()

    def stats(self) -> dict:
        return self.control("stats")

    def reset_stats(self) -> None:
        self.control("stats/reset")

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stats_by_status(stats: dict) -> dict[str, int]:
    return {k: int(v) for k, v in stats.get("by_status", {}).items()}


# ----------------------------------------------------------------------------- the tap

def tap_config(url: str, **settings) -> dict:
    return {"api_key": SANDBOX_KEY, "api_url": url, "progress_interval_seconds": 0, **settings}


# The charges sync of the CPU and scaling benchmarks: ~3.1 KB records, no client-side limits.
CHARGES_EXPAND = {"charges": ["customer"]}
NO_LIMITS = {"max_requests_per_second": 1_000_000, "max_requests_per_second_per_endpoint": 1_000_000}


def charges_config(url: str, workers: int, **extra) -> dict:
    return tap_config(url, max_workers=workers, full_resync_streams=[], expand=CHARGES_EXPAND, **NO_LIMITS, **extra)


_CATALOGS: dict[str, dict] = {}


def catalog_for(streams: list[str]) -> dict:
    """The tap's discovered catalog with only `streams` selected (as tests/conftest.py does)."""
    if "base" not in _CATALOGS:
        sys.path.insert(0, str(ROOT))
        from tap_stripe.tap import TapStripe

        _CATALOGS["base"] = TapStripe(config={"api_key": SANDBOX_KEY}, validate_config=False).catalog_dict
    catalog = json.loads(json.dumps(_CATALOGS["base"]))
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in streams
    return catalog


@dataclass
class TapResult:
    returncode: int
    wall: float
    user: float
    sys: float
    maxrss_mb: float
    out_bytes: int
    out_lines: int
    record_lines: int
    summary: dict = field(default_factory=dict)
    stderr: str = ""

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    @property
    def records(self) -> int:
        streams = self.summary.get("streams", {})
        return sum(s.get("records", 0) for s in streams.values()) if streams else self.record_lines

    def total(self, key: str) -> int:
        return sum(s.get(key, 0) for s in self.summary.get("streams", {}).values())


def _drain(stream, counts: list[int]) -> None:
    """Count bytes, lines and RECORD lines of the tap's stdout (large reads: cheap)."""
    tail = b""
    markers = (b'"type":"RECORD"', b'"type": "RECORD"')
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        counts[0] += len(chunk)
        counts[1] += chunk.count(b"\n")
        cut = chunk.rfind(b"\n") + 1  # count markers in whole lines only; keep the partial last line
        if cut:
            data = tail + chunk[:cut]
            counts[2] += sum(data.count(m) for m in markers)
            tail = chunk[cut:]
        else:
            tail += chunk
    counts[2] += sum(tail.count(m) for m in markers)
    stream.close()


def _vm_hwm_kb(pid: int) -> int:
    """The process's peak resident memory since its exec, in KiB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_process(cmd: list[str], *, cwd: Path, env: dict | None = None, timeout: float = 7200) -> TapResult:
    """Run `cmd`, count its stdout, and return its own rusage (os.wait4).

    Peak RSS is the process's VmHWM (/proc/<pid>/status), read while it runs: `ru_maxrss`
    would also count this process's memory, which the child shares between fork and exec."""
    err_path = Path(cwd) / "stderr.txt"
    with open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, **(env or {})})
        counts = [0, 0, 0]
        reader = threading.Thread(target=_drain, args=(proc.stdout, counts), daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        peak_kb, polls = 0, 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            polls += 1
            if polls % 5 == 0:
                peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(30)
    return TapResult(proc.returncode, wall, usage.ru_utime, usage.ru_stime, (peak_kb or usage.ru_maxrss) / 1024,
                     counts[0], counts[1], counts[2], stderr=err_path.read_text(errors="replace")[-4000:])


def run_tap(config: dict, streams: list[str], *, workdir: Path | None = None, command: list[str] | None = None,
            catalog: bool = True, timeout: float = 7200) -> TapResult:
    """Run the tap (or `command`, e.g. the SDK comparison tap) once; read its summary file."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="tap-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    summary_path = workdir / "summary.json"
    if summary_path.exists():
        summary_path.unlink()
    config = {**config, "summary_file": str(summary_path)}
    (workdir / "config.json").write_text(json.dumps(config))
    cmd = [*(command or [PY, "-m", "tap_stripe"]), "--config", str(workdir / "config.json")]
    if catalog:
        (workdir / "catalog.json").write_text(json.dumps(catalog_for(streams)))
        cmd += ["--catalog", str(workdir / "catalog.json")]
    env = {"PYTHONPATH": str(ROOT)}
    result = run_process(cmd, cwd=workdir, env=env, timeout=timeout)
    if summary_path.exists():
        result.summary = json.loads(summary_path.read_text())
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stderr}")
    return result


def pages_min(records: int, page_size: int = 100) -> int:
    return -(-records // page_size)


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"
