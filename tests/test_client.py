"""The request layer against requests-mock: headers, paging, retries, errors."""

import logging
import random

import pytest
import requests_mock as rm

from tap_stripe.api.client import ClientOptions, Credentials, StripeClient
from tap_stripe.api.pagination import list_pages
from tap_stripe.api.ratelimit import RateLimiter
from tap_stripe.errors import AuthenticationFailed, PermissionDenied, ProductNotSetUp, RetriesExhausted, StripeError

API = "https://api.stripe.test"


def make_client(credentials=None, limiter=None, **overrides) -> StripeClient:
    options = ClientOptions(**{**dict(api_url=API, api_version="2023-08-16", user_agent="tap-stripe/test",
                                      connect_timeout=5, read_timeout=5, max_retries=3, max_backoff_seconds=0.01),
                               **overrides})
    return StripeClient(credentials or Credentials("sk_test_123"), options, limiter or RateLimiter(1000, 1000))


def test_headers_carry_key_version_account_and_agent(requests_mock):
    requests_mock.get(f"{API}/v1/charges", json={"object": "list", "data": [], "has_more": False})
    make_client().get("/v1/charges", account="acct_42")
    sent = requests_mock.last_request
    assert sent.headers["Authorization"] == "Bearer sk_test_123"
    assert sent.headers["Stripe-Version"] == "2023-08-16"
    assert sent.headers["Stripe-Account"] == "acct_42"
    assert sent.headers["User-Agent"] == "tap-stripe/test"


def test_responses_are_asked_for_compressed_and_read_decompressed(requests_mock):
    """Pages travel gzip-compressed (a page of 100 charges is ~230 KB of JSON), as requests asks
    by default: the client keeps requests' default headers and decodes the body it reads whole."""
    import gzip

    body = b'{"object": "list", "data": [{"id": "ch_1"}], "has_more": false}'
    requests_mock.get(f"{API}/v1/charges", content=gzip.compress(body), headers={"Content-Encoding": "gzip"})
    assert make_client().get("/v1/charges") == {"object": "list", "data": [{"id": "ch_1"}], "has_more": False}
    assert "gzip" in requests_mock.last_request.headers["Accept-Encoding"]


def test_the_environments_proxy_reaches_every_request(requests_mock, monkeypatch):
    """`HTTPS_PROXY` (and `NO_PROXY`) apply as with `requests.get`: the client works them out
    once per thread and host, and sends every request with them."""
    import requests

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "files.stripe.test")
    sent = []
    real_send = requests.Session.send

    def send(session, request, **kwargs):
        sent.append((request.url.split("?")[0], kwargs.get("proxies")))
        return real_send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    requests_mock.get(f"{API}/v1/charges", json={"data": [], "has_more": False})
    requests_mock.get("https://files.stripe.test/v1/files", json={"data": [], "has_more": False})
    client = make_client()
    for _ in range(2):
        client.get("/v1/charges")
    client.request("GET", "/v1/files", base_url="https://files.stripe.test")
    assert [(url, (proxies or {}).get("https")) for url, proxies in sent] == [
        (f"{API}/v1/charges", "http://proxy.internal:3128"),
        (f"{API}/v1/charges", "http://proxy.internal:3128"),
        ("https://files.stripe.test/v1/files", None),  # NO_PROXY, for its own host
    ]


def test_no_account_header_for_the_keys_own_account(requests_mock):
    requests_mock.get(f"{API}/v1/charges", json={"data": [], "has_more": False})
    make_client().get("/v1/charges")
    assert "Stripe-Account" not in requests_mock.last_request.headers


def test_paging_follows_starting_after_until_has_more_is_false(requests_mock):
    pages = [
        {"data": [{"id": "ch_3"}, {"id": "ch_2"}], "has_more": True},
        {"data": [{"id": "ch_1"}], "has_more": False},
    ]
    requests_mock.get(f"{API}/v1/charges", [{"json": p} for p in pages])
    bodies = list(list_pages(make_client(), "/v1/charges", [("created[gte]", 5)], account=None,
                             endpoint="/v1/charges", stream="charges"))
    assert [o["id"] for b in bodies for o in b["data"]] == ["ch_3", "ch_2", "ch_1"]
    first, second = requests_mock.request_history
    assert first.qs == {"created[gte]": ["5"], "limit": ["100"]}
    assert second.qs == {"created[gte]": ["5"], "limit": ["100"], "starting_after": ["ch_2"]}


def test_a_cursor_that_does_not_advance_stops_with_a_clear_error(requests_mock):
    page = {"data": [{"id": "ch_1"}], "has_more": True}
    requests_mock.get(f"{API}/v1/charges", json=page)
    with pytest.raises(StripeError, match="cursor ch_1 twice"):
        list(list_pages(make_client(), "/v1/charges", [], account=None, endpoint="/v1/charges", stream="charges"))
    assert len(requests_mock.request_history) == 2


def test_has_more_with_an_empty_page_is_an_error(requests_mock):
    requests_mock.get(f"{API}/v1/charges", json={"data": [], "has_more": True})
    with pytest.raises(StripeError, match="empty page"):
        list(list_pages(make_client(), "/v1/charges", [], account=None, endpoint="/v1/charges", stream="charges"))


def test_retries_429_5xx_and_truncated_json_then_succeeds(requests_mock):
    requests_mock.get(f"{API}/v1/charges", [
        {"status_code": 429, "json": {"error": {"type": "invalid_request_error", "code": "rate_limit"}}},
        {"status_code": 500, "json": {"error": {"type": "api_error"}}},
        {"status_code": 200, "text": '{"data": [{"id": "ch_'},
        {"status_code": 200, "json": {"data": [{"id": "ch_1"}], "has_more": False}},
    ])
    client = make_client()
    assert client.get("/v1/charges", stream="charges")["data"] == [{"id": "ch_1"}]
    assert client.stats.retries["charges"] == 3
    assert client.stats.throttled["charges"] == 1


def test_stripe_should_retry_false_is_not_retried(requests_mock):
    requests_mock.get(f"{API}/v1/charges", status_code=503, headers={"Stripe-Should-Retry": "false"},
                      json={"error": {"type": "api_error", "message": "nope"}})
    with pytest.raises(StripeError):
        make_client().get("/v1/charges")
    assert len(requests_mock.request_history) == 1


class Unlimited:
    """A limiter that never waits, so the only sleeps are the retries' waits."""

    def __init__(self):
        self.throttles = 0

    def acquire(self, endpoint):
        pass

    def throttled(self, endpoint):
        self.throttles += 1


def test_retry_after_is_waited_exactly_capped_and_floored(requests_mock, monkeypatch, caplog):
    waits = []
    monkeypatch.setattr("time.sleep", waits.append)  # the sleep backoff calls
    requests_mock.get(f"{API}/v1/charges", [
        {"status_code": 429, "headers": {"Retry-After": "7", "Request-Id": "req_1"}, "json": {}},
        {"status_code": 503, "headers": {"Retry-After": "100"}, "json": {}},
        {"status_code": 429, "headers": {"Retry-After": "-3"}, "json": {}},
        {"json": {"data": [], "has_more": False}},
    ])
    client = make_client(max_backoff_seconds=30, limiter=Unlimited())
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        client.get("/v1/charges", stream="charges")
    assert waits == [7.0, 30.0, 0.0]  # as given (no jitter), capped at max_backoff_seconds, floored at 0
    assert caplog.messages[0] == "Retry 1/3 in 7.0s: GET /v1/charges -> HTTP 429 (request id req_1)"
    assert client.stats.retries["charges"] == 3
    assert client.stats.throttled["charges"] == client.limiter.throttles == 2


def test_waits_grow_exponentially_with_jitter_up_to_max_backoff(requests_mock, monkeypatch):
    waits = []
    monkeypatch.setattr("time.sleep", waits.append)
    monkeypatch.setattr("tap_stripe.api.client.random", random.Random(7))
    requests_mock.get(f"{API}/v1/charges", [{"status_code": 500, "json": {}}] * 5 + [{"json": {"data": []}}])
    make_client(max_retries=5, max_backoff_seconds=3, limiter=Unlimited()).get("/v1/charges")
    ceilings = [0.5, 1, 2, 3, 3]  # 0.5 s × 2^(n-1), capped at max_backoff_seconds
    same = random.Random(7)
    assert waits == [same.uniform(ceiling / 2, ceiling) for ceiling in ceilings]  # the upper half, jittered


def test_a_rejected_token_is_refreshed_once_per_request_and_is_not_a_retry(requests_mock, monkeypatch):
    waits = []
    monkeypatch.setattr("time.sleep", waits.append)
    refreshed = []

    def refresh():
        refreshed.append(1)
        return Credentials(f"rt_token{len(refreshed)}", refresh=refresh)

    requests_mock.get(f"{API}/v1/charges", [{"status_code": 401, "json": {}}, {"json": {"data": []}}])
    client = make_client(credentials=Credentials("rt_token0", refresh=refresh), limiter=Unlimited())
    assert client.get("/v1/charges", stream="charges") == {"data": []}
    assert (len(refreshed), waits, client.stats.retries, client.stats.requests["charges"]) == (1, [], {}, 2)
    assert requests_mock.last_request.headers["Authorization"] == "Bearer rt_token1"

    requests_mock.get(f"{API}/v1/charges", [{"status_code": 401, "json": {}}, {"status_code": 500, "json": {}},
                                             {"status_code": 401, "json": {}}])
    with pytest.raises(AuthenticationFailed):
        client.get("/v1/charges", stream="charges")
    assert len(refreshed) == 2 and len(waits) == 1  # the second 401 of the request is not refreshed again


def test_exhausted_retries_say_what_failed_in_one_line(requests_mock):
    requests_mock.get(f"{API}/v1/charges", status_code=500, headers={"Request-Id": "req_abc"},
                      json={"error": {"type": "api_error", "code": "boom", "message": "Something broke"}})
    with pytest.raises(RetriesExhausted) as info:
        make_client(max_retries=2).get("/v1/charges", [("created[gte]", 1)], stream="charges")
    message = str(info.value)
    assert "\n" not in message
    for part in ("stream charges", "GET /v1/charges", "HTTP 500", "api_error/boom", "Something broke", "req_abc"):
        assert part in message
    assert "created" not in message  # no query string
    assert len(requests_mock.request_history) == 3


def test_401_403_and_product_errors_are_classified(requests_mock):
    client = make_client()
    requests_mock.get(f"{API}/v1/a", status_code=401,
                      json={"error": {"message": "Invalid API Key provided: sk_test_****123"}})
    requests_mock.get(f"{API}/v1/b", status_code=403,
                      json={"error": {"message": "Having the 'rak_charge_read' permission would allow this request "
                                                 "to continue."}})
    requests_mock.get(f"{API}/v1/c", status_code=400,
                      json={"error": {"message": "Your account is not set up to use Issuing."}})
    with pytest.raises(AuthenticationFailed):
        client.get("/v1/a")
    with pytest.raises(PermissionDenied):
        client.get("/v1/b")
    with pytest.raises(ProductNotSetUp):
        client.get("/v1/c")


def test_connection_errors_are_retried(requests_mock):
    import requests

    requests_mock.get(f"{API}/v1/charges", [{"exc": requests.exceptions.ConnectionError("reset")},
                                             {"exc": requests.exceptions.ReadTimeout("slow")},
                                             {"json": {"data": [], "has_more": False}}])
    assert make_client().get("/v1/charges") == {"data": [], "has_more": False}


def test_the_key_never_appears_in_errors(requests_mock):
    key = "sk_test_supersecretvalue123"
    requests_mock.get(f"{API}/v1/x", status_code=401, json={"error": {"message": f"Invalid API Key provided: {key}"}})
    with pytest.raises(AuthenticationFailed) as info:
        make_client(credentials=Credentials(key)).get("/v1/x")
    assert "supersecret" not in str(info.value)


@pytest.fixture
def requests_mock():
    with rm.Mocker() as mocker:
        yield mocker


def test_a_header_the_http_library_refuses_fails_without_quoting_it():
    """requests refuses a header value with a line break and quotes it in its error: the key's
    would reach the log. The client's error names what to check, never the value."""
    with pytest.raises(StripeError) as raised:
        make_client(Credentials("sk_test_secret987\n")).get("/v1/charges")
    assert "secret987" not in str(raised.value) and "API key" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
