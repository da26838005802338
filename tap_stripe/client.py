"""The request layer: every HTTP call to Stripe goes through `StripeClient.request`.

It owns what is the same for every request: the base URL, Bearer auth, `Stripe-Version`,
`Stripe-Account`, the user agent, TLS 1.2 or newer with verified certificates, connect and
read timeouts, the shared rate limiter, retries and error classification. One
`requests.Session` per thread keeps connections alive without sharing a session between
threads. Each body is parsed once, with orjson.

Retries: 429, 409, 5xx, connection errors, timeouts and 200s whose body is not JSON are
retried with exponential backoff and full jitter, capped at `max_backoff_seconds`. A
`Retry-After` header sets the wait; `Stripe-Should-Retry: false` stops retrying and `true`
forces a retry. When retries run out, `RetriesExhausted` says what failed in one line.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from tap_stripe.ratelimit import RateLimiter

LOGGER = logging.getLogger("tap_stripe")

PRODUCT_NOT_SET_UP_HINTS = ("not set up", "not enabled", "does not have access", "not activated",
                            "isn't enabled", "is not available", "must be enabled", "not been activated")


class StripeError(Exception):
    """A Stripe request that failed for good. `str()` is one line, without secrets."""

    def __init__(self, message: str, *, status: int | None = None, path: str = "",
                 error: dict | None = None, request_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.path = path
        self.error = error or {}
        self.request_id = request_id


class AuthenticationFailed(StripeError):
    """401: the key or token is wrong, expired or revoked."""


class PermissionDenied(StripeError):
    """403: the key may not read this endpoint."""


class ProductNotSetUp(StripeError):
    """400/404: the account does not use this Stripe product (Issuing, Treasury, …)."""


class RetriesExhausted(StripeError):
    """Retryable failures went on past `max_retries`."""


class Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, request_id: str | None = None,
                 retry_after: float | None = None, error: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.error = error or {}


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


class TLS12Adapter(HTTPAdapter):
    """An adapter whose TLS context refuses anything older than TLS 1.2."""

    def __init__(self, ca_bundle: str | None = None, **kwargs: Any):
        self._ca_bundle = ca_bundle
        super().__init__(**kwargs)

    def _context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._ca_bundle)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context()
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any):
        kwargs["ssl_context"] = self._context()
        return super().proxy_manager_for(*args, **kwargs)


@dataclass
class Credentials:
    """The key in use; `refresh` (OAuth) replaces it when Stripe rejects it mid-run."""

    api_key: str
    account_id: str | None = None
    refresh: Callable[[], Credentials] | None = None


class StripeClient:
    def __init__(self, *, credentials: Credentials, api_url: str, api_version: str,
                 user_agent: str, connect_timeout: float, read_timeout: float,
                 max_retries: int, max_backoff_seconds: float, limiter: RateLimiter,
                 ca_bundle: str | None = None, stats: ClientStats | None = None,
                 on_response: Callable[[str, str, str | None, int, float], None] | None = None):
        self.credentials = credentials
        self.api_url = api_url.rstrip("/")
        self.api_version = api_version
        self.user_agent = user_agent
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.max_backoff = max_backoff_seconds
        self.limiter = limiter
        self.ca_bundle = ca_bundle
        self.stats = stats or ClientStats()
        # Called for every response, retried ones included: (stream, endpoint, account,
        # status, seconds); never given a header, URL or query (the SDK's METRIC lines).
        self.on_response = on_response
        self._local = threading.local()
        self._refresh_lock = threading.Lock()
        self.last_response_date: str | None = None  # the `Date` header Stripe last sent
        self.latency = 0.25  # running average of a response's time, in seconds

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = TLS12Adapter(self.ca_bundle, pool_connections=4, pool_maxsize=4)
            session.mount("https://", adapter)
            session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=4))
            session.verify = self.ca_bundle or True
            self._local.session = session
        return session

    def get(self, path: str, params: list[tuple[str, Any]] | dict | None = None, *,
            account: str | None = None, endpoint: str | None = None, stream: str = "") -> Any:
        return self.request("GET", path, params=params, account=account, endpoint=endpoint, stream=stream)

    def request(self, method: str, path: str, *, params: Any = None, data: Any = None,
                account: str | None = None, endpoint: str | None = None, stream: str = "",
                base_url: str | None = None, headers: dict | None = None, raw: bool = False) -> Any:
        """Send one request with retries; return the parsed JSON body (bytes if `raw`)."""
        tags = (stream, endpoint or path, account or self.credentials.account_id)
        endpoint = f"{method} {endpoint or path}"
        url = (base_url or self.api_url).rstrip("/") + path
        attempt = 0
        refreshed = False
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
                continue
            except Retryable as retry:
                attempt += 1
                if retry.status == 429:
                    self.limiter.throttled(endpoint)
                    self.stats.add(self.stats.throttled, stream)
                if attempt > self.max_retries:
                    raise RetriesExhausted(
                        _describe(stream, method, path, retry.status, retry.error, retry.request_id,
                                  f"gave up after {self.max_retries} retries: {retry.reason}"),
                        status=retry.status, path=path, error=retry.error, request_id=retry.request_id,
                    ) from None
                self.stats.add(self.stats.retries, stream)
                wait = self._backoff(attempt, retry.retry_after)
                LOGGER.warning("Retry %d/%d in %.1fs: %s %s -> %s (request id %s)", attempt,
                               self.max_retries, wait, method, path, retry.reason,
                               retry.request_id or "-")
                time.sleep(wait)

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

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.max_backoff, max(0.0, retry_after))
        ceiling = min(self.max_backoff, 0.5 * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def _send(self, method: str, url: str, path: str, params: Any, data: Any,
              account: str | None, extra_headers: dict | None, raw: bool,
              tags: tuple[str, str, str | None] = ("", "", None)) -> Any:
        headers = {
            "Authorization": f"Bearer {self.credentials.api_key}",
            "Stripe-Version": self.api_version,
            "User-Agent": self.user_agent,
        }
        account = account or self.credentials.account_id
        if account:
            headers["Stripe-Account"] = account
        if extra_headers:
            headers.update(extra_headers)
        started = time.monotonic()
        try:
            response = self._session().request(method, url, params=params, data=data,
                                               headers=headers, timeout=self.timeout,
                                               allow_redirects=False)
            self.latency += (time.monotonic() - started - self.latency) / 8
        except requests.exceptions.Timeout:
            raise Retryable("timed out") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as exc:
            if isinstance(exc, requests.exceptions.SSLError):
                raise StripeError(f"TLS error talking to {urlsplit(url).netloc}: "
                                  f"{_ssl_reason(exc)}", path=path) from None
            raise Retryable(f"connection error ({type(exc).__name__})") from None
        if self.on_response is not None:
            self.on_response(*tags, response.status_code, response.elapsed.total_seconds())
        return self._handle(response, method, path, raw)

    def _handle(self, response: requests.Response, method: str, path: str, raw: bool) -> Any:
        status = response.status_code
        self.last_response_date = response.headers.get("Date")
        request_id = response.headers.get("Request-Id")
        should_retry = response.headers.get("Stripe-Should-Retry")
        if status == 200:
            self._local.received = getattr(self._local, "received", 0) + len(response.content)
            if raw:
                return response.content
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise Retryable("200 with a body that is not complete JSON", 200, request_id) from None
        error = _error_body(response)
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


def _error_body(response: requests.Response) -> dict:
    try:
        body = orjson.loads(response.content)
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
