"""Pages/s the sandbox serves: sandbox in a subprocess, N keep-alive client threads here.

Measures full list pages (limit=100) of a stream paged with starting_after, each response read
completely; by default bodies are parsed with orjson (like a tap) — pass --no-parse to only read
bytes. Python client threads share one GIL, so with 2 cores the client itself can be the limit;
the number printed is a lower bound on the server's rate.

  python benchmarks/sandbox_speed.py --stream charges --seconds 5 --conns 4
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time

import orjson


def _get(port, target):
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", target, headers={"Authorization": "Bearer sk_test_sandbox"})
    return c.getresponse().read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stream", default="charges")
    ap.add_argument("--path", default=None)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--volume", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=12199)
    ap.add_argument("--no-parse", action="store_true")
    a = ap.parse_args()
    path = a.path or f"/v1/{a.stream}"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "stripe_sandbox", "--port", str(a.port), "--seed", "1",
                             "--volumes", f'{{"{a.stream}": {a.volume}}}'], cwd=root, stdout=subprocess.PIPE)
    proc.stdout.readline()
    _get(a.port, f"{path}?limit=100")  # build templates before timing
    stop = time.time() + a.seconds
    pages = [0] * a.conns
    nbytes = [0] * a.conns
    H = {"Authorization": "Bearer sk_test_sandbox"}

    prefix = orjson.loads(_get(a.port, f"{path}?limit=1"))["data"][0]["id"].rsplit("_", 1)[0].encode() + b"_"

    def worker(k):
        conn = http.client.HTTPConnection("127.0.0.1", a.port)
        cursor = None
        # each connection pages a different region so pages are not repeated
        while time.time() < stop:
            q = f"{path}?limit=100" + (f"&starting_after={cursor}" if cursor else "")
            conn.request("GET", q, headers=H)
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body[:200]
            nbytes[k] += len(body)
            if a.no_parse:
                # cursor = the id that follows the last top-level object's `"id":"` + prefix; objects'
                # ids are fixed-width, so take the last occurrence of the stream's id prefix at top level
                j = body.rfind(b'"id":"' + prefix)
                cursor = body[j + 6:j + 6 + len(prefix) + 24].decode() if b'"has_more":true' in body[-200:] else None
            else:
                d = orjson.loads(body)
                cursor = d["data"][-1]["id"] if d["has_more"] else None
            pages[k] += 1

    def cpu():
        with open(f"/proc/{proc.pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

    try:
        c0 = cpu()
        t0 = time.time()
        ts = [threading.Thread(target=worker, args=(k,)) for k in range(a.conns)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        el = time.time() - t0
        server_cpu = (cpu() - c0) / el
        total = sum(pages)
        print(f"{total} pages of 100 {a.stream} in {el:.2f}s over {a.conns} keep-alive connections: "
              f"{total / el:.0f} pages/s, {total * 100 / el:.0f} objects/s, {sum(nbytes) / el / 1e6:.1f} MB/s; "
              f"server process CPU {server_cpu * 100:.0f}% of one core "
              f"(=> ~{total / el / max(server_cpu, 1e-9):.0f} pages/s per fully used core)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
