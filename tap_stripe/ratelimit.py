"""Client-side rate limiting shared by every request of a run.

Stripe limits an account globally (100 req/s live, 25 req/s test) and per API operation
(25 req/s; Search and Files 20 req/s). `RateLimiter` holds one token bucket for the whole
run and one per endpoint template (`GET /v1/customers/{customer}/tax_ids` is one endpoint,
whatever the id). `acquire()` blocks until both buckets have a token.

Requests are paced evenly, each at a reserved send time (no bursts), so a run at the
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


class _Pace:
    """Paces requests at `rate` per second by handing out send times ("slots") 1/rate apart.

    A slot is reserved when a request asks, so threads that wake up a little late still
    keep the average rate (a token bucket would lose the time they overslept)."""

    __slots__ = ("rate", "ceiling", "next_slot", "stamp", "last_throttle")

    def __init__(self, rate: float) -> None:
        self.rate = self.ceiling = rate
        self.next_slot = 0.0
        self.stamp = time.monotonic()
        self.last_throttle = -1e9

    def reserve(self, now: float) -> float:
        """The time this request may go."""
        if self.rate < self.ceiling and now - self.last_throttle > 1.0:
            self.rate = min(self.ceiling, self.rate + self.ceiling * 0.1 * (now - self.stamp))
        self.stamp = now
        slot = max(now, self.next_slot)
        self.next_slot = slot + 1.0 / self.rate
        return slot

    def throttle(self, now: float) -> None:
        if now - self.last_throttle < 1.0:
            return  # one cut per second: 429s of one burst arrive together
        self.rate = max(self.ceiling * 0.2, self.rate * 0.7)
        self.next_slot = max(self.next_slot, now + 1.0 / self.rate)
        self.last_throttle = self.stamp = now


class RateLimiter:
    def __init__(self, global_rate: float, endpoint_rate: float, special_rate: float | None = None):
        self._lock = threading.Lock()
        self._global = _Pace(global_rate)
        self._endpoint_rate = endpoint_rate
        self._special_rate = special_rate or min(endpoint_rate, STRIPE_SEARCH_FILES_LIMIT * HEADROOM)
        self._endpoints: dict[str, _Pace] = {}

    def _pace(self, endpoint: str) -> _Pace:
        pace = self._endpoints.get(endpoint)
        if pace is None:
            special = "/search" in endpoint or endpoint.split(" ")[-1].startswith("/v1/files")
            pace = self._endpoints[endpoint] = _Pace(self._special_rate if special else self._endpoint_rate)
        return pace

    def acquire(self, endpoint: str) -> float:
        """Block until a request to `endpoint` may go; return the seconds waited.

        First a slot of the endpoint's pace, then, when that slot comes, one of the global
        pace (so a busy endpoint never holds global slots the other endpoints could use)."""
        with self._lock:
            now = time.monotonic()
            slot = self._pace(endpoint).reserve(now)
        waited = max(0.0, slot - now)
        time.sleep(waited)
        with self._lock:
            now = time.monotonic()
            slot = self._global.reserve(now)
        time.sleep(max(0.0, slot - now))
        return waited + max(0.0, slot - now)

    @property
    def endpoint_rate(self) -> float:
        return self._endpoint_rate

    def throttled(self, endpoint: str) -> None:
        """Record a 429 for `endpoint`: slow down globally and for that endpoint."""
        with self._lock:
            now = time.monotonic()
            self._global.throttle(now)
            self._pace(endpoint).throttle(now)
