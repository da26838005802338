"""Client-side rate limiting shared by every request of a run.

Stripe limits an account globally (100 req/s live, 25 req/s test) and per API operation
(25 req/s; Search and Files 20 req/s). `RateLimiter` holds one pace for the whole run and
one per endpoint template (`GET /v1/customers/{customer}/tax_ids` is one endpoint, whatever
the id). `acquire()` blocks until both let the request go.

Requests are paced evenly, each at a reserved send time (no bursts). Threads do not wake
exactly on time (the GIL, the wait for a global slot), and a late request followed by an
on-time one would bunch; so each pace also keeps its last second of actual send times and
holds a request while the rate's worth already went out within the last second. A run at
the configured rate therefore never sends more than that many requests in any second, which
is how Stripe (and the sandbox) count.

On a 429 the limiter cuts the rate that was hit (see `throttled`) by 5–30% (once per
second, however many 429s arrive together) and holds it there while 429s keep coming, so an
overloaded run keeps slowing down instead of spinning in a hot retry loop. Half a second
without one, the rates grow back by 30% of their ceiling per second: a lone 429 at the edge
of a limit costs a fraction of a second of rate, not several.
"""

from __future__ import annotations

import threading
import time
from collections import deque

# Default share of Stripe's limits the tap allows itself, leaving headroom for the
# account's own traffic.
HEADROOM = 0.8
STRIPE_GLOBAL_LIMIT = {"live": 100.0, "test": 25.0}
STRIPE_ENDPOINT_LIMIT = 25.0
STRIPE_SEARCH_FILES_LIMIT = 20.0
THROTTLE_CUT = 0.7  # the rate kept after a 429
EDGE_CUT = 0.95  # the rate kept after a 429 at the edge of an endpoint's limit (see `throttled`)
QUIET_SECONDS = 0.5  # without a 429 before the rate grows back
RECOVERY_PER_SECOND = 0.3  # of the ceiling


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

    __slots__ = ("ceiling", "last_throttle", "next_slot", "rate", "sent", "stamp")

    def __init__(self, rate: float) -> None:
        self.rate = self.ceiling = rate
        self.next_slot = 0.0
        self.stamp = time.monotonic()
        self.last_throttle = -1e9
        self.sent: deque[float] = deque()  # send times of the last second

    def full_until(self, now: float) -> float:
        """When the last second's sends leave room for one more (`now` if they do)."""
        sent = self.sent
        while sent and sent[0] <= now - 1.0:
            sent.popleft()
        return sent[0] + 1.0 if len(sent) >= max(1, int(self.rate)) else now

    def reserve(self, now: float) -> float:
        """The time this request may go."""
        if self.rate < self.ceiling and now - self.last_throttle > QUIET_SECONDS:
            grow_from = max(self.stamp, self.last_throttle + QUIET_SECONDS)
            self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_PER_SECOND * (now - grow_from))
        self.stamp = now
        slot = max(now, self.next_slot)
        self.next_slot = slot + 1.0 / self.rate
        return slot

    def throttle(self, now: float, keep: float = THROTTLE_CUT) -> None:
        if now - self.last_throttle < 1.0:
            return  # one cut per second: 429s of one burst arrive together
        self.rate = max(self.ceiling * 0.2, self.rate * keep)
        self.next_slot = max(self.next_slot, now + 1.0 / self.rate)
        self.last_throttle = self.stamp = now


class RateLimiter:
    def __init__(self, global_rate: float, endpoint_rate: float):
        self._lock = threading.Lock()
        self._global = _Pace(global_rate)
        self._endpoint_rate = endpoint_rate
        self._special_rate = min(endpoint_rate, STRIPE_SEARCH_FILES_LIMIT * HEADROOM)
        self._endpoints: dict[str, _Pace] = {}

    def _pace(self, endpoint: str) -> _Pace:
        pace = self._endpoints.get(endpoint)
        if pace is None:
            special = "/search" in endpoint or endpoint.split(" ")[-1].startswith("/v1/files")
            pace = self._endpoints[endpoint] = _Pace(self._special_rate if special else self._endpoint_rate)
        return pace

    def acquire(self, endpoint: str) -> None:
        """Block until a request to `endpoint` may go.

        First a slot of the endpoint's pace, then, when that slot comes, one of the global
        pace (so a busy endpoint never holds global slots the other endpoints could use),
        then room in both paces' last second of sends."""
        with self._lock:
            pace = self._pace(endpoint)
            slot = pace.reserve(time.monotonic())
        _sleep_until(slot)
        with self._lock:
            slot = self._global.reserve(time.monotonic())
        _sleep_until(slot)
        while True:
            with self._lock:
                now = time.monotonic()
                until = max(pace.full_until(now), self._global.full_until(now))
                if until <= now:
                    pace.sent.append(now)
                    self._global.sent.append(now)
                    return
            _sleep_until(until)

    @property
    def endpoint_rate(self) -> float:
        return self._endpoint_rate

    @property
    def global_rate(self) -> float:
        return self._global.ceiling

    def throttled(self, endpoint: str) -> None:
        """Record a 429 for `endpoint` and slow down what caused it.

        Stripe's 429 does not say which limit was hit. When the endpoint sent its whole
        rate in the last second and the account did not, the run is at the edge of the
        endpoint's limit (a request arrived a little early: jitter, not overload): the endpoint
        alone slows down, by 5%, and the others keep the global budget. Otherwise the account's
        budget is spent, by this run or by the account's own traffic: both slow down by 30%."""
        with self._lock:
            now = time.monotonic()
            pace = self._pace(endpoint)
            if pace.full_until(now) > now and self._global.full_until(now) <= now:
                pace.throttle(now, EDGE_CUT)
            else:
                pace.throttle(now)
                self._global.throttle(now)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))
