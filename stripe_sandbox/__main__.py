"""python -m stripe_sandbox --port 12111 --seed 1 --scale 1.0 [...]"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading

from .facts import ENDPOINT_RPS, TEST_MODE_RPS
from .sandbox import Sandbox


def main(argv=None):
    p = argparse.ArgumentParser(prog="stripe_sandbox",
                                description="Local fake of the Stripe REST API (loopback only)")
    p.add_argument("--port", type=int, default=12111)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--volumes", type=str, default=None, help='JSON, e.g. {"charges": 100000}')
    p.add_argument("--accounts", type=int, default=0, help="number of connected accounts")
    p.add_argument("--history-days", type=float, default=365)
    p.add_argument("--future-days", type=float, default=0, help="objects created after the clock appear as it advances")
    p.add_argument("--now", type=int, default=None, help="initial sandbox clock (unix); default today 00:00 UTC")
    p.add_argument("--key", action="append", default=None, help="valid API key (repeatable); default sk_test_sandbox")
    p.add_argument("--latency-ms", type=float, default=0)
    p.add_argument("--jitter-ms", type=float, default=0)
    p.add_argument("--rps", type=float, default=None,
                   help=f"global requests/s per account (Stripe test mode: {TEST_MODE_RPS})")
    p.add_argument("--endpoint-rps", type=float, default=None, help=f"requests/s per endpoint (Stripe: {ENDPOINT_RPS})")
    a = p.parse_args(argv)
    sb = Sandbox(seed=a.seed, scale=a.scale, volumes=json.loads(a.volumes) if a.volumes else None,
                 accounts=a.accounts, history_days=a.history_days, future_days=a.future_days, now=a.now,
                 keys=tuple(a.key or ["sk_test_sandbox"]), latency_ms=a.latency_ms, jitter_ms=a.jitter_ms,
                 rps=a.rps, endpoint_rps=a.endpoint_rps, port=a.port)
    sb.start()
    print(f"stripe_sandbox listening on {sb.url} (seed={a.seed}, clock={sb.now})", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    sb.close()


if __name__ == "__main__":
    main()
