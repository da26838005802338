"""The request layer: every HTTP call to Stripe goes through `StripeClient.request`.

It owns what is the same for every request: the base URL, Bearer auth, `Stripe-Version`,
`Stripe-Account`, the user agent, TLS 1.2 or newer with verified certificates, connect and
read timeouts, the shared rate limiter, retries and error classification. One
`requests.Session` per thread keeps connections alive without sharing a session between
threads. Each body is parsed once, with orjson.

Retries (the `backoff` library): 429, 409, 5xx, connection errors, timeouts and 200s whose
body is not JSON are retried up to `max_retries` times. The wait before retry n is drawn
uniformly from the upper half of min(`max_backoff_seconds`, 0.5 s × 2^(n-1)); a `Retry-After`
header sets the wait instead (capped at `max_backoff_seconds`, not jittered).
`Stripe-Should-Retry: false` stops retrying and `true` forces a retry. When retries run out,
`RetriesExhausted` says what failed in one line.

Errors never carry the key: messages are built from the path (no query string), status,
Stripe's error type, code and message, and the `Request-Id`.
"""

from __future__ import annotations

import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import backoff
import orjson
import requests
import urllib3
from backoff.types import Details
from requests.adapters import HTTPAdapter

from tap_stripe.api.ratelimit import RateLimiter
from tap_stripe.errors import (
    AuthenticationFailed,
    PermissionDenied,
    ProductNotSetUp,
    RetriesExhausted,
    Retryable,
    StripeError,
)

LOGGER = logging.getLogger("tap_stripe")

PRODUCT_NOT_SET_UP_HINTS = ("not set up", "not enabled", "does not have access", "not activated",
                            "isn't enabled", "is not available", "must be enabled", "not been activated")


@dataclass
class ClientStats:
    """Counters per stream, read by the run summary."""

    requests: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    throttled: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, counter: dict[str, int], stream: str) -> None:
        with self.lock:
            counter[stream] = counter.get(stream, 0) + 1


def tls_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """A TLS context that refuses anything older than TLS 1.2 and verifies certificates.

    Made once per client and shared by its threads' sessions (an `SSLContext` may be used
    from several threads): each context loads the CA store, ~0.8 MB and ~17 ms of CPU, which
    a context per thread paid again on every one of up to hundreds of threads."""
    context = ssl.create_default_context(cafile=ca_bundle)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class TLS12Adapter(HTTPAdapter):
    """An adapter using `context` (from `tls_context`: TLS 1.2 or newer) for every connection."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any):
        self._tls = context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._tls
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any):
        kwargs["ssl_context"] = self._tls
        return super().proxy_manager_for(*args, **kwargs)


@dataclass
class Credentials:
    """The key in use; `refresh` (OAuth) replaces it when Stripe rejects it mid-run."""

    api_key: str
    account_id: str | None = None
    refresh: Callable[[], Credentials] | None = None


@dataclass(frozen=True)
class ClientOptions:
    """How a client talks to Stripe: where, with which API version and user agent, how long it
    waits (seconds to connect, to read), how often it retries and how long it may back off
    between tries, and which CA bundle it trusts (None: the system's)."""

    api_url: str
    api_version: str
    user_agent: str
    connect_timeout: float
    read_timeout: float
    max_retries: int
    max_backoff_seconds: float
    ca_bundle: str | None = None


class StripeClient:
    """`limiter` paces every request (the run's rates); `stats` counts them per stream;
    `on_response` is called for every response, retried ones included: (stream, endpoint,
    account, status, seconds), never a header, URL or query (the SDK's METRIC lines)."""

    def __init__(self, credentials: Credentials, options: ClientOptions, limiter: RateLimiter, *,
                 stats: ClientStats | None = None,
                 on_response: Callable[[str, str, str | None, int, float], None] | None = None):
        self.credentials = credentials
        self.options = options
        self.api_url = options.api_url.rstrip("/")
        self.timeout = (options.connect_timeout, options.read_timeout)
        self.max_retries = options.max_retries
        self.max_backoff = options.max_backoff_seconds
        self.ca_bundle = options.ca_bundle
        self.limiter = limiter
        self.stats = stats or ClientStats()
        self.on_response = on_response
        self._local = threading.local()
        self._refresh_lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None  # made by the first thread's session, shared
        self._tls_lock = threading.Lock()
        self.last_response_date: str | None = None  # the `Date` header Stripe last sent
        self.latency = 0.25  # running average of a response's time, in seconds

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            with self._tls_lock:
                if self._tls is None:
                    self._tls = tls_context(self.ca_bundle)
            adapter = TLS12Adapter(context=self._tls, pool_connections=4, pool_maxsize=4)
            session.mount("https://", adapter)
            session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=4))
            session.verify = self.ca_bundle or True
            self._local.session = session
            self._local.environment = {}  # `_environment`'s settings per host, for this requests.Session
        return session

    def get(self, path: str, params: list[tuple[str, Any]] | dict | None = None, *,
            account: str | None = None, endpoint: str | None = None, stream: str = "") -> Any:
        return self.request("GET", path, params=params, account=account, endpoint=endpoint, stream=stream)

    def request(self, method: str, path: str, *, params: Any = None, data: Any = None,
                account: str | None = None, endpoint: str | None = None, stream: str = "",
                base_url: str | None = None, headers: dict | None = None, raw: bool = False) -> Any:
        """Send one request, retried by `backoff` on `Retryable` failures; return the parsed JSON
        body (bytes if `raw`)."""
        tags = (stream, endpoint or path, account or self.credentials.account_id)
        endpoint = f"{method} {endpoint or path}"
        url = (base_url or self.api_url).rstrip("/") + path
        refreshed = False

        def send() -> Any:
            """One try. A rejected OAuth token is refreshed once per request and sent again at
            once: that is not a retry."""
            nonlocal refreshed
            while True:
                self.limiter.acquire(endpoint)
                self.stats.add(self.stats.requests, stream)
                sent_with = self.credentials
                try:
                    return self._send(method, url, path, params, data, account, headers, raw, tags)
                except AuthenticationFailed:
                    if self.credentials.refresh is None or refreshed:
                        raise
                    refreshed = True
                    self._refresh(sent_with)
                except Retryable as retry:
                    if retry.status == 429:  # every 429, the last one included
                        self.limiter.throttled(endpoint)
                        self.stats.add(self.stats.throttled, stream)
                    raise

        def log_retry(details: Details) -> None:
            retry = details["exception"]
            assert isinstance(retry, Retryable)
            self.stats.add(self.stats.retries, stream)
            LOGGER.warning("Retry %d/%d in %.1fs: %s %s -> %s (request id %s)", details["tries"],
                           self.max_retries, details["wait"], method, path, retry.reason,
                           retry.request_id or "-")

        # logger=None: `log_retry` logs each retry; backoff's own lines (an ERROR on giving up) would repeat them.
        retrying = backoff.on_exception(_waits, Retryable, max_tries=self.max_retries + 1, jitter=None,
                                        on_backoff=log_retry, logger=None, max_backoff=self.max_backoff)
        try:
            return retrying(send)()
        except Retryable as retry:
            raise RetriesExhausted(
                _describe(stream, method, path, retry.status, retry.error, retry.request_id,
                          f"gave up after {self.max_retries} retries: {retry.reason}"),
                status=retry.status, path=path, error=retry.error, request_id=retry.request_id,
            ) from None

    def received(self) -> int:
        """Bytes of 200 responses this thread has received (the engine's memory accounting)."""
        return getattr(self._local, "received", 0)

    def _refresh(self, rejected: Credentials) -> None:
        """Exchange the refresh token again, once for all the threads whose requests the
        old token failed."""
        with self._refresh_lock:
            if self.credentials is not rejected:
                return  # another thread already refreshed
            refresh = self.credentials.refresh
            assert refresh is not None
            self.credentials = refresh()
            LOGGER.info("Refreshed the OAuth access token after Stripe rejected it.")

    def _send(self, method: str, url: str, path: str, params: Any, data: Any,
              account: str | None, extra_headers: dict | None, raw: bool,
              tags: tuple[str, str, str | None] = ("", "", None)) -> Any:
        session = self._session()
        headers = dict(session.headers)  # requests' defaults: compressed responses (gzip), keep-alive
        headers.update({
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Stripe-Version": self.options.api_version,
            "User-Agent": self.options.user_agent,
        })
        account = account or self.credentials.account_id
        if account:
            headers["Stripe-Account"] = account
        if extra_headers:
            headers.update(extra_headers)
        prepared = requests.PreparedRequest()
        try:
            prepared.prepare(method=method, url=url, headers=headers, params=params, data=data)
        except requests.exceptions.InvalidHeader:
            # Its message quotes the header's value: the API key or an OAuth token.
            raise StripeError("a request header holds a line break or leading whitespace: check the "
                              "API key, account ids and user_agent settings", path=path) from None
        started = time.monotonic()
        try:
            # `Session.send` with what `Session.request` would merge from the environment
            # (proxies, CA bundle), computed once per host, and the body read whole: a page
            # costs about a fifth less CPU than `session.request(...).content`, which merges
            # settings and reads the body in 10 KB pieces on every call.
            response = session.send(prepared, stream=True, timeout=self.timeout, allow_redirects=False,
                                    **self._environment(session, url))
            body = response.raw.read(decode_content=True)
            seconds = time.monotonic() - started
            self.latency += (seconds - self.latency) / 8
        except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError):
            raise Retryable("timed out") from None
        except requests.exceptions.SSLError as exc:
            raise StripeError(f"TLS error talking to {urlsplit(url).netloc}: {_ssl_reason(exc)}", path=path) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError, urllib3.exceptions.HTTPError) as exc:
            raise Retryable(f"connection error ({type(exc).__name__})") from None
        if self.on_response is not None:
            self.on_response(*tags, response.status_code, seconds)
        return self._handle(response, body, method, path, raw)

    def _environment(self, session: requests.Session, url: str) -> dict[str, Any]:
        """Proxies, CA bundle and client certificate for `url` from the environment, once per
        thread's session and host (`Session.request` works them out on every call)."""
        host = urlsplit(url)[:2]
        cache: dict[tuple[str, str], dict[str, Any]] = self._local.environment
        settings = cache.get(host)
        if settings is None:
            settings = session.merge_environment_settings(url, {}, None, session.verify, None)
            settings.pop("stream", None)
            cache[host] = settings
        return settings

    def _handle(self, response: requests.Response, body: bytes, method: str, path: str, raw: bool) -> Any:
        status = response.status_code
        self.last_response_date = response.headers.get("Date")
        request_id = response.headers.get("Request-Id")
        should_retry = response.headers.get("Stripe-Should-Retry")
        if status == 200:
            self._local.received = getattr(self._local, "received", 0) + len(body)
            if raw:
                return body
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                raise Retryable("200 with a body that is not complete JSON", 200, request_id) from None
        error = _error_body(body)
        retry_after = _retry_after(response)
        if should_retry == "true" or (should_retry != "false" and (status in (409, 429) or status >= 500)):
            raise Retryable(f"HTTP {status}", status, request_id, retry_after, error)
        message = _describe("", method, path, status, error, request_id)
        kind = StripeError
        if status == 401:
            kind = AuthenticationFailed
        elif status == 403:
            kind = PermissionDenied
        elif status in (400, 404) and _product_not_set_up(status, error):
            kind = ProductNotSetUp
        raise kind(message, status=status, path=path, error=error, request_id=request_id)


def _waits(max_backoff: float) -> Generator[float, Retryable | None, None]:
    """`backoff`'s wait generator: sent each failure, it yields the seconds to wait before the
    next try. The jitter is done here (the decorator's `jitter=None`) so that a `Retry-After`
    value is waited as given."""
    retry = yield 0.0  # backoff primes the generator with `send(None)`
    attempt = 0
    while True:
        attempt += 1
        assert retry is not None
        if retry.retry_after is not None:
            wait = min(max_backoff, max(0.0, retry.retry_after))
        else:
            ceiling = min(max_backoff, 0.5 * 2 ** (attempt - 1))
            wait = random.uniform(ceiling / 2, ceiling)
        retry = yield wait


def _error_body(content: bytes) -> dict:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {}
    return body.get("error", {}) if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _product_not_set_up(status: int, error: dict) -> bool:
    message = (error.get("message") or "").lower()
    if any(hint in message for hint in PRODUCT_NOT_SET_UP_HINTS):
        return True
    # An unknown URL (the product's endpoints do not exist for this account/version).
    return status == 404 and "unrecognized request url" in message


def _describe(stream: str, method: str, path: str, status: int | None, error: dict,
              request_id: str | None, prefix: str = "") -> str:
    parts = []
    if stream:
        parts.append(f"stream {stream}")
    parts.append(f"{method} {path}")
    if status is not None:
        parts.append(f"HTTP {status}")
    if error.get("type") or error.get("code"):
        parts.append("/".join(p for p in (error.get("type"), error.get("code")) if p))
    if error.get("message"):
        parts.append(redact(" ".join(str(error["message"]).split())))
    parts.append(f"request id {request_id or '-'}")
    return ", ".join(parts) + (f" ({prefix})" if prefix else "")


def _ssl_reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("UNSUPPORTED_PROTOCOL", "CERTIFICATE_VERIFY_FAILED", "TLSV1_ALERT_PROTOCOL_VERSION",
                   "WRONG_VERSION_NUMBER", "NO_PROTOCOLS_AVAILABLE"):
        if marker in text:
            required = " (TLS 1.2 or newer is required)" if "PROTOCOL" in marker else ""
            return marker.lower().replace("_", " ") + required
    return "handshake failed"


def redact(text: str) -> str:
    """Mask anything shaped like a Stripe key or token inside `text`."""
    return re.sub(r"\b((?:sk|rk|pk)_(?:live|test)_|rt_|ac_)[0-9A-Za-z]+", r"\1****", text)
