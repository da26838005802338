"""The client-side rate limiter: pacing, per-endpoint budgets, slowing down on 429s."""

import random
import threading
import time

from tap_stripe.ratelimit import RateLimiter, default_limits


def _rate(limiter, endpoints, seconds=1.0, threads=6):
    count = {e: 0 for e in endpoints}
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def work(endpoint):
        while time.monotonic() < stop:
            limiter.acquire(endpoint)
            if time.monotonic() < stop:  # only what the limiter let through within the second
                with lock:
                    count[endpoint] += 1

    workers = [threading.Thread(target=work, args=(endpoints[i % len(endpoints)],)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return count


def test_per_endpoint_budget_holds():
    counts = _rate(RateLimiter(1000, 20), ["GET /v1/charges"], seconds=1.0)
    assert 15 <= counts["GET /v1/charges"] <= 22


def test_global_budget_holds_across_endpoints():
    counts = _rate(RateLimiter(30, 100), ["GET /v1/a", "GET /v1/b", "GET /v1/c"], seconds=1.0)
    assert 24 <= sum(counts.values()) <= 32


def test_search_and_files_get_their_lower_budget():
    limiter = RateLimiter(1000, 25)
    counts = _rate(limiter, ["GET /v1/customers/search", "GET /v1/files", "GET /v1/charges"], seconds=1.0, threads=9)
    assert counts["GET /v1/customers/search"] <= 17  # 80% of Stripe's 20/s
    for endpoint in ("GET /v1/customers/search", "GET /v1/files"):
        assert 13 <= counts[endpoint] <= 17, (endpoint, counts)  # 16/s: lower, but not starved
    assert counts["GET /v1/charges"] >= 20, counts  # an ordinary endpoint keeps its 25/s


def test_a_429_slows_down_once_per_burst_and_recovers():
    limiter = RateLimiter(100, 100)
    for _ in range(5):  # five 429s of one burst count as one
        limiter.throttled("GET /v1/charges")
    assert 69 <= limiter._global.rate <= 71
    limiter._global.last_throttle -= 2  # two quiet seconds later
    limiter.acquire("GET /v1/x")
    time.sleep(0.5)
    limiter.acquire("GET /v1/x")
    assert limiter._global.rate > 70


def test_a_429_at_the_edge_of_an_endpoint_limit_slows_only_that_endpoint():
    limiter = RateLimiter(100, 10)
    for _ in range(10):  # the endpoint's whole rate within the last second
        limiter.acquire("GET /v1/charges")
    limiter.throttled("GET /v1/charges")
    assert limiter._pace("GET /v1/charges").rate == 9.0
    assert limiter._global.rate == 100.0


def test_late_wakeups_never_put_more_than_the_rate_in_one_second(monkeypatch):
    """Threads that oversleep must not bunch: no one-second window holds more sends than
    the rate (Stripe counts that way), however late each thread wakes."""
    rng = random.Random(1)
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda seconds: real_sleep(seconds + rng.uniform(0, 0.08)))
    limiter = RateLimiter(1000, 20)
    sent, lock = [], threading.Lock()
    stop = time.monotonic() + 2.5

    def work():
        while time.monotonic() < stop:
            limiter.acquire("GET /v1/charges")
            with lock:
                sent.append(time.monotonic())

    workers = [threading.Thread(target=work) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    sent.sort()
    busiest = max(sum(1 for t in sent if start <= t < start + 1.0) for start in sent)
    assert busiest <= 20
    assert len(sent) >= 40  # and the rate still holds on average


def test_late_wakeups_do_not_lose_the_rate():
    """Threads that oversleep keep their reserved slots: the average rate holds."""
    limiter = RateLimiter(1000, 50)
    counts = _rate(limiter, ["GET /v1/charges"], seconds=1.0, threads=12)
    assert counts["GET /v1/charges"] >= 45


def test_defaults_follow_the_key_mode():
    assert default_limits("sk_live_x") == (80.0, 20.0)
    assert default_limits("rk_test_x") == (20.0, 20.0)
