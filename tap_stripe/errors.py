"""Every exception the tap raises, in one place: what a setting, a state file, Stripe or a
report says is wrong, and how a run stops early (a fatal error, or a signal asking it to stop
at a safe point). This module imports nothing of the tap's, so any module may import it.

- `ConfigError`: a setting is wrong (`settings.validate`);
- `StateError`: the state or catalog file is not what the tap reads (`state.validate`);
- `StripeError`: a Stripe request failed for good, and why: `AuthenticationFailed` (401),
  `PermissionDenied` (403), `ProductNotSetUp`, `RetriesExhausted`, `ReportFailed`;
- `Retryable`: one try of a request failed in a way worth another (inside `client.StripeClient`);
- `Unaddable`: schema evolution could not rebuild a stream's output with new fields;
- `FatalRunError`: the run must stop; `RunTerminated`: a signal stopped it (`Termination` is
  the request); `Stopped`: a fetch not done because the run is stopping.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is wrong; the message is one line naming it."""


class StateError(ValueError):
    """The state file is not tap-stripe state; the message is one line."""


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


class ReportFailed(StripeError):
    """A report run failed, or was still pending at the poll limit. `str()` is one line."""


class Retryable(Exception):
    """One try of a request failed in a way another try may not (429, 409, 5xx, a timeout, a
    cut body); `StripeClient.request` retries it, then raises `RetriesExhausted`."""

    def __init__(self, reason: str, status: int | None = None, request_id: str | None = None,
                 retry_after: float | None = None, error: dict | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.request_id = request_id
        self.retry_after = retry_after
        self.error = error or {}


class Unaddable(Exception):
    """The stream's output could not be rebuilt with these fields (`SchemaEvolution.widen`)."""

    def __init__(self, keys: list[str]):
        super().__init__(", ".join(keys))
        self.keys = keys


class FatalRunError(Exception):
    """The run must stop; `str()` is the one line to show."""


class Termination:
    """A stop asked for by a signal (SIGTERM, SIGINT). The signal handler only sets it; the
    run's main thread stops at its next safe point, between two messages, never inside one."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum


class RunTerminated(Exception):
    """The run stopped on a signal after writing its last true STATE."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}; the last STATE written is where the next run resumes")
        self.signum = signum


class Stopped(Exception):
    """A fetch not done because the run is stopping: its segment is never written."""
