"""Rate limits and fault rules (all off unless asked for)."""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections import deque
from dataclasses import dataclass

FAULT_KINDS = ("500", "503", "400", "unexpandable", "reset", "truncated", "slow", "403", "not_setup", "429", "404")


@dataclass
class FaultRule:
    path: str                      # glob ("/v1/charges*") or prefix
    kind: str                      # one of FAULT_KINDS
    count: int | None = None       # fire for the first `count` matching requests (after `skip`)
    rate: float | None = None      # or with this probability (seeded)
    skip: int = 0                  # let this many matching requests through first
    delay: float = 0.0             # seconds, for kind "slow"
    method: str | None = None
    product: str = "Issuing"       # for kind "not_setup"
    permission: str | None = None  # for kind "403", e.g. "rak_charge_read"
    id: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method:
            return False
        return fnmatch.fnmatchcase(path, self.path) or path.startswith(self.path.rstrip("*"))\
            if any(c in self.path for c in "*?[") else path.startswith(self.path)


class Faults:
    def __init__(self, seed: int = 0):
        self.rules: list[FaultRule] = []
        self.rng = random.Random(seed ^ 0xFA17)
        self.lock = threading.Lock()
        self._next = 1

    def add(self, path: str, kind: str, count: int | None = None, rate: float | None = None, skip: int = 0,
            delay: float = 0.0, method: str | None = None, product: str = "Issuing",
            permission: str | None = None) -> int:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {FAULT_KINDS}")
        if count is None and rate is None:
            rate = 1.0
        with self.lock:
            r = FaultRule(path=path, kind=kind, count=count, rate=rate, skip=skip, delay=delay, method=method,
                          product=product, permission=permission, id=self._next)
            self._next += 1
            self.rules.append(r)
            return r.id

    def clear(self, rule_id: int | None = None):
        with self.lock:
            self.rules = [] if rule_id is None else [r for r in self.rules if r.id != rule_id]

    def pick(self, method: str, path: str) -> FaultRule | None:
        if not self.rules:
            return None
        with self.lock:
            for r in self.rules:
                if not r.matches(method, path):
                    continue
                r.seen += 1
                if r.seen <= r.skip:
                    continue
                if r.count is not None:
                    if r.fired < r.count:
                        r.fired += 1
                        return r
                    continue
                if self.rng.random() < (r.rate or 0):
                    r.fired += 1
                    return r
        return None


class RateLimiter:
    """Sliding one-second windows: global per account and per (account, endpoint)."""

    def __init__(self, rps: float | None = None, endpoint_rps: float | None = None):
        self.rps = rps
        self.endpoint_rps = endpoint_rps
        self.windows: dict = {}

    def _hit(self, key, limit, now) -> bool:
        w = self.windows.get(key)
        if w is None:
            w = self.windows[key] = deque()
        while w and w[0] <= now - 1.0:
            w.popleft()
        if len(w) >= limit:
            return False
        w.append(now)
        return True

    def allow(self, account: int, endpoint: str) -> bool:
        if not self.rps and not self.endpoint_rps:
            return True
        now = time.monotonic()
        if self.endpoint_rps:
            w = self.windows.get((account, endpoint))
            if w is not None:
                while w and w[0] <= now - 1.0:
                    w.popleft()
                if len(w) >= self.endpoint_rps:
                    return False
        if self.rps and not self._hit(("global", account), self.rps, now):
            return False
        if self.endpoint_rps:
            self._hit((account, endpoint), self.endpoint_rps, now)
        return True
