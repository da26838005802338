"""Rate limits, faults, request log and counters."""
import http.client
import time

import pytest
import requests
from conftest import SandboxClient as Client  # noqa: F401


class StoppedClock:
    """The sandbox limiter's `time`: it moves only when the test moves it, so a run of requests
    falls in one second however slowly the machine serves them."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def limiter_clock(monkeypatch):
    clock = StoppedClock()
    monkeypatch.setattr("stripe_sandbox.limits.time", clock)
    return clock


def test_rate_limit_429(c, sb, limiter_clock):
    sb.set_limits(rps=5)
    codes = [c.get("/v1/customers", {"limit": 1}).status_code for _ in range(12)]
    assert codes.count(200) == 5 and codes.count(429) == 7
    r = c.get("/v1/customers")
    assert r.json()["error"]["code"] == "rate_limit" and r.json()["error"]["type"] == "invalid_request_error"
    limiter_clock.now += 0.99
    assert c.get("/v1/customers").status_code == 429  # the window is one second
    limiter_clock.now += 0.02
    assert c.get("/v1/customers").status_code == 200


def test_endpoint_rate_limit(c, sb, limiter_clock):
    sb.set_limits(endpoint_rps=3)
    codes = [c.get("/v1/customers").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert c.get("/v1/charges").status_code == 200  # other endpoint has its own budget


@pytest.mark.parametrize("kind,status,retry", [("500", 500, None), ("503", 503, "true"), ("400", 400, "false"),
                                               ("unexpandable", 400, "false"),
                                               ("429", 429, None)])
def test_status_faults(c, sb, kind, status, retry):
    sb.add_fault("/v1/charges*", kind, count=2)
    r1, r2, r3 = (c.get("/v1/charges") for _ in range(3))
    assert r1.status_code == status and r2.status_code == status and r3.status_code == 200
    assert r1.headers.get("Stripe-Should-Retry") == retry
    assert "error" in r1.json()
    assert c.get("/v1/customers").status_code == 200


def test_permission_fault(c, sb):
    sb.add_fault("/v1/charges", "403", count=1, permission="rak_charge_read")
    e = c.get("/v1/charges").json()["error"]
    assert "rak_charge_read" in e["message"] and "does not have the required permissions" in e["message"]
    assert "sk_test_sandbox" not in e["message"]


def test_not_setup_fault(c, sb):
    sb.add_fault("/v1/issuing/*", "not_setup", product="Issuing")
    r = c.get("/v1/issuing/cards")
    assert r.status_code == 400 and "not set up to use Issuing" in r.json()["error"]["message"]


def test_reset_fault(c, sb):
    sb.add_fault("/v1/charges", "reset", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(sb.url + "/v1/charges", headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=5)
    assert c.get("/v1/charges").status_code == 200


def test_truncated_fault(sb):
    sb.add_fault("/v1/charges", "truncated", count=1)
    conn = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=5)
    conn.request("GET", "/v1/charges", headers={"Authorization": "Bearer sk_test_sandbox"})
    resp = conn.getresponse()
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()


def test_slow_fault_and_latency(sb):
    sb.add_fault("/v1/charges", "slow", count=1, delay=5.0)
    with pytest.raises(requests.exceptions.Timeout):  # held 5 s: a 0.5 s client timeout always fires
        requests.get(sb.url + "/v1/charges", headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=0.5)
    sb.set_latency(500, 0)
    t = time.monotonic()
    import concurrent.futures as cf
    with cf.ThreadPoolExecutor(10) as ex:
        codes = list(ex.map(lambda _: requests.get(sb.url + "/v1/customers",
                                                   headers={"Authorization": "Bearer sk_test_sandbox"}).status_code,
                            range(10)))
    elapsed = time.monotonic() - t
    # Each response is held 0.5 s: at least that; served one after another they would take 5 s,
    # served concurrently about 0.5 s, which leaves a loaded machine 4 s of slack.
    assert codes == [200] * 10 and 0.5 <= elapsed < 4.0, elapsed


def test_request_log_and_counters(c, sb):
    sb.reset_stats()
    c.get("/v1/customers")
    c.get("/v1/customers")
    c.get("/v1/nope")
    s = sb.stats()
    assert s["total"] == 3 and s["by_path"]["/v1/customers"] == {"200": 2} and s["by_path"]["/v1/nope"] == {"404": 1}
    assert [r["status"] for r in sb.requests] == [200, 200, 404]
    assert all(r["request_id"].startswith("req_") for r in sb.requests)
    sb.reset_stats()
    assert sb.stats()["total"] == 0 and sb.requests == []
