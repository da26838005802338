"""The client-side rate limiter: pacing, per-endpoint budgets, slowing down on 429s.

The limiter runs on a simulated clock (`SimClock`), not the machine's: its threads sleep in
simulated time, which moves only when every one of them is asleep. What a run at a rate sends
in a second is then the same on a loaded machine as on an idle one.
"""

import heapq
import itertools
import random
import threading

import pytest

from tap_stripe.api.ratelimit import EDGE_CUT, RateLimiter, default_limits


class SimClock:
    """`time.monotonic()` and `time.sleep()` for `threads` threads, in simulated seconds.

    A sleep ends when the clock reaches its end (plus `oversleep()`: a thread that wakes late);
    the clock jumps to the earliest end once every thread is asleep or done, so work between
    sleeps takes no simulated time. Each thread calls `done()` when it ends."""

    def __init__(self, threads: int = 1, oversleep=lambda: 0.0):
        self.now = 1000.0
        self.oversleep = oversleep
        self.running = threads
        self.sleepers: list = []  # heap of (wake time, order, released flag)
        self.order = itertools.count()
        self.cond = threading.Condition()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.cond:
            entry = [self.now + max(0.0, seconds) + self.oversleep(), next(self.order), False]
            heapq.heappush(self.sleepers, entry)
            self.running -= 1
            self._advance()
            while not entry[2]:
                if not self.cond.wait(timeout=60):  # a guard against a deadlock, not a timing
                    raise RuntimeError("SimClock: no thread woke for 60 s")

    def done(self) -> None:
        with self.cond:
            self.running -= 1
            self._advance()

    def _advance(self) -> None:
        if self.running or not self.sleepers:
            return
        self.now = max(self.now, self.sleepers[0][0])
        while self.sleepers and self.sleepers[0][0] <= self.now:
            heapq.heappop(self.sleepers)[2] = True
            self.running += 1
        self.cond.notify_all()


@pytest.fixture
def clock(monkeypatch):
    """Make a SimClock the limiter's time: clock(threads, oversleep) -> SimClock."""

    def make(threads: int = 1, oversleep=lambda: 0.0) -> SimClock:
        sim = SimClock(threads, oversleep)
        monkeypatch.setattr("tap_stripe.api.ratelimit.time", sim)
        return sim

    return make


def _rate(limiter, sim, endpoints, seconds=1.0, threads=6):
    """Requests the limiter lets through within `seconds` of simulated time, per endpoint."""
    count = {e: 0 for e in endpoints}
    stop = sim.monotonic() + seconds
    lock = threading.Lock()

    def work(endpoint):
        try:
            while sim.monotonic() < stop:
                limiter.acquire(endpoint)
                if sim.monotonic() < stop:  # only what the limiter let through within the second
                    with lock:
                        count[endpoint] += 1
        finally:
            sim.done()

    workers = [threading.Thread(target=work, args=(endpoints[i % len(endpoints)],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return count


def test_per_endpoint_budget_holds(clock):
    sim = clock(6)
    counts = _rate(RateLimiter(1000, 20), sim, ["GET /v1/charges"], seconds=1.0)
    assert 15 <= counts["GET /v1/charges"] <= 22


def test_global_budget_holds_across_endpoints(clock):
    sim = clock(6)
    counts = _rate(RateLimiter(30, 100), sim, ["GET /v1/a", "GET /v1/b", "GET /v1/c"], seconds=1.0)
    assert 24 <= sum(counts.values()) <= 32


def test_search_and_files_get_their_lower_budget(clock):
    sim = clock(9)
    limiter = RateLimiter(1000, 25)
    counts = _rate(limiter, sim, ["GET /v1/customers/search", "GET /v1/files", "GET /v1/charges"], seconds=1.0,
                   threads=9)
    assert counts["GET /v1/customers/search"] <= 17  # 80% of Stripe's 20/s
    for endpoint in ("GET /v1/customers/search", "GET /v1/files"):
        assert 13 <= counts[endpoint] <= 17, (endpoint, counts)  # 16/s: lower, but not starved
    assert counts["GET /v1/charges"] >= 20, counts  # an ordinary endpoint keeps its 25/s


def test_a_429_slows_down_once_per_burst_and_recovers(clock):
    sim = clock(1)
    limiter = RateLimiter(100, 100)
    for _ in range(5):  # five 429s of one burst count as one
        limiter.throttled("GET /v1/charges")
    assert 69 <= limiter._global.rate <= 71
    limiter._global.last_throttle -= 2  # two quiet seconds later
    limiter.acquire("GET /v1/x")
    sim.sleep(0.5)
    limiter.acquire("GET /v1/x")
    assert limiter._global.rate > 70


def test_a_429_at_the_edge_of_an_endpoint_limit_slows_only_that_endpoint(clock):
    clock(1)
    limiter = RateLimiter(100, 10)
    for _ in range(10):  # the endpoint's whole rate within the last second
        limiter.acquire("GET /v1/charges")
    limiter.throttled("GET /v1/charges")
    assert limiter._pace("GET /v1/charges").rate == 10 * EDGE_CUT < 10
    assert limiter._global.rate == 100.0


def test_late_wakeups_never_put_more_than_the_rate_in_one_second(clock):
    """Threads that oversleep must not bunch: no one-second window holds more sends than
    the rate (Stripe counts that way), however late each thread wakes."""
    rng = random.Random(1)
    sim = clock(8, oversleep=lambda: rng.uniform(0, 0.08))
    limiter = RateLimiter(1000, 20)
    sent, lock = [], threading.Lock()
    stop = sim.monotonic() + 2.5

    def work():
        try:
            while sim.monotonic() < stop:
                limiter.acquire("GET /v1/charges")
                with lock:
                    sent.append(sim.monotonic())
        finally:
            sim.done()

    workers = [threading.Thread(target=work) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sent.sort()
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 20
    assert len(sent) >= 40  # and the rate still holds on average


def test_late_wakeups_do_not_lose_the_rate(clock):
    """Threads that oversleep keep their reserved slots: the average rate holds."""
    rng = random.Random(2)
    sim = clock(12, oversleep=lambda: rng.uniform(0, 0.03))
    limiter = RateLimiter(1000, 50)
    counts = _rate(limiter, sim, ["GET /v1/charges"], seconds=1.0, threads=12)
    assert counts["GET /v1/charges"] >= 45


def test_defaults_follow_the_key_mode():
    assert default_limits("sk_live_x") == (80.0, 20.0)
    assert default_limits("rk_test_x") == (20.0, 20.0)
