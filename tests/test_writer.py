"""Singer output: whole lines, whatever interrupts the writes."""

import fcntl
import json
import os
import signal
import subprocess
import sys

from conftest import ROOT

WRITER = """
import signal, sys
from tap_stripe.output.writer import FastWriter
signal.signal(signal.SIGTERM, lambda signum, frame: None)  # as the tap's handler: note it, go on
writer = FastWriter()
for i in range(2000):
    writer.write_line(b'{"n":%d,"pad":"%s"}\\n' % (i, b"x" * 300))
writer.flush()
"""


def test_a_signal_during_a_blocked_write_loses_no_byte():
    """SIGTERM while the writer is blocked on a full pipe (a slow target): Python's buffered
    writer dropped the rest of an interrupted partial write, cutting a line (found by the
    simulation test)."""
    read_fd, write_fd = os.pipe()
    fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 4096)
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=write_fd, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(write_fd)
    numbers = []
    with os.fdopen(read_fd, "rb") as out:
        for count, line in enumerate(out, 1):
            if count == 100:  # 30 KB read of 600 KB: the writer is inside one blocked write
                os.kill(proc.pid, signal.SIGTERM)
            numbers.append(json.loads(line)["n"])
    assert proc.wait() == 0
    assert numbers == list(range(2000))
