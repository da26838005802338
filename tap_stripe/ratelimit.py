"""Client-side rate limiting shared by every request of a run.

Stripe limits an account globally (100 req/s live, 25 req/s test) and per API operation
(25 req/s; Search and Files 20 req/s). `RateLimiter` holds one token bucket for the whole
run and one per endpoint template (`GET /v1/customers/{customer}/tax_ids` is one endpoint,
whatever the id). `acquire()` blocks until both buckets have a token.

Requests are paced evenly (no bursts: a bucket holds at most one token), so a run at the
configured rate stays under a server's one-second sliding window. On a 429 the limiter cuts
the global rate and the endpoint's rate by 30% (once per second, however many 429s arrive
together), then lets both grow back by 10% of their ceiling per second without 429s, so a
throttled run slows down instead of spinning in a hot retry loop, and recovers.
"""

from __future__ import annotations

import threading
import time

# Default share of Stripe's limits the tap allows itself, leaving headroom for the
# account's own traffic.
HEADROOM = 0.8
STRIPE_GLOBAL_LIMIT = {"live": 100.0, "test": 25.0}
STRIPE_ENDPOINT_LIMIT = 25.0
STRIPE_SEARCH_FILES_LIMIT = 20.0


def key_mode(api_key: str) -> str:
    """`live` or `test`, from the key's prefix (`sk_live_…`, `rk_test_…`)."""
    return "live" if "_live_" in api_key[:8] else "test"


def default_limits(api_key: str) -> tuple[float, float]:
    """(global, per endpoint) requests per second for this key's mode."""
    return (STRIPE_GLOBAL_LIMIT[key_mode(api_key)] * HEADROOM, STRIPE_ENDPOINT_LIMIT * HEADROOM)


class _Bucket:
    __slots__ = ("rate", "ceiling", "tokens", "stamp", "last_throttle")

    def __init__(self, rate: float) -> None:
        self.rate = self.ceiling = rate
        self.tokens = 1.0
        self.stamp = time.monotonic()
        self.last_throttle = 0.0

    def refill(self, now: float) -> None:
        elapsed = now - self.stamp
        self.stamp = now
        if self.rate < self.ceiling and now - self.last_throttle > 1.0:
            self.rate = min(self.ceiling, self.rate + self.ceiling * 0.1 * elapsed)
        self.tokens = min(1.0, self.tokens + elapsed * self.rate)

    def wait_time(self) -> float:
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    def throttle(self, now: float) -> None:
        if now - self.last_throttle < 1.0:
            return  # one cut per second: 429s of one burst arrive together
        self.rate = max(self.ceiling * 0.2, self.rate * 0.7)
        self.tokens = min(self.tokens, 0.0)
        self.last_throttle = now


class RateLimiter:
    def __init__(self, global_rate: float, endpoint_rate: float, special_rate: float | None = None):
        self._lock = threading.Lock()
        self._global = _Bucket(global_rate)
        self._endpoint_rate = endpoint_rate
        self._special_rate = special_rate or min(endpoint_rate, STRIPE_SEARCH_FILES_LIMIT * HEADROOM)
        self._endpoints: dict[str, _Bucket] = {}

    def _bucket(self, endpoint: str) -> _Bucket:
        bucket = self._endpoints.get(endpoint)
        if bucket is None:
            special = "/search" in endpoint or endpoint.split(" ")[-1].startswith(("/v1/files", "files:"))
            bucket = self._endpoints[endpoint] = _Bucket(self._special_rate if special else self._endpoint_rate)
        return bucket

    def acquire(self, endpoint: str) -> float:
        """Block until a request to `endpoint` may go; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = time.monotonic()
                bucket = self._bucket(endpoint)
                self._global.refill(now)
                bucket.refill(now)
                wait = max(self._global.wait_time(), bucket.wait_time())
                if wait <= 0:
                    self._global.tokens -= 1.0
                    bucket.tokens -= 1.0
                    return waited
            time.sleep(wait)
            waited += wait

    def throttled(self, endpoint: str) -> None:
        """Record a 429 for `endpoint`: slow down globally and for that endpoint."""
        with self._lock:
            now = time.monotonic()
            self._global.throttle(now)
            self._bucket(endpoint).throttle(now)
