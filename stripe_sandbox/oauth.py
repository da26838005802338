"""Stripe Connect OAuth in the sandbox: `/oauth/token` and the access tokens it issues.

`POST /oauth/token` with `grant_type=refresh_token`, a refresh token this sandbox issued,
and the platform's secret key as Bearer (or `client_secret`) answers like Stripe:
`access_token`, `refresh_token`, `stripe_user_id`, `scope`, `token_type`. A revoked or
unknown refresh token gets 400 `invalid_grant`.

An access token acts as a key for its connected account. It expires after
`access_token_uses` requests (then 401 `expired`), and it may not read the tables Stripe
keeps from OAuth apps (`OAUTH_FORBIDDEN`: 403 like Stripe's).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl

OAUTH_FORBIDDEN = ("/v1/accounts", "/v1/reporting/", "/v1/radar/value_list")


@dataclass
class _Access:
    account: int
    uses_left: int | None


class OAuth:
    def __init__(self, platform_keys: set[str]):
        self.platform_keys = platform_keys
        self.refresh_tokens: dict[str, int] = {}  # token -> account index
        self.revoked: set[str] = set()
        self.access: dict[str, _Access] = {}
        self.access_token_uses: int | None = None
        self.exchanges = 0
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def issue_refresh_token(self, account: int) -> str:
        token = f"rt_sandbox_{account}_{next(self._counter):06d}"
        self.refresh_tokens[token] = account
        return token

    def revoke(self, refresh_token: str) -> None:
        self.revoked.add(refresh_token)

    def expire_access_tokens(self) -> None:
        with self._lock:
            for access in self.access.values():
                access.uses_left = 0

    def token(self, body: bytes, authorization: str, account_id) -> tuple[int, dict]:
        form = dict(parse_qsl(body.decode(errors="replace")))
        secret = form.get("client_secret") or (
            authorization[7:].strip() if authorization.lower().startswith("bearer ") else "")
        if secret not in self.platform_keys:
            return 401, {"error": "invalid_client", "error_description": "No such client secret."}
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "Only refresh_token is supported here."}
        refresh = form.get("refresh_token", "")
        if refresh in self.revoked or refresh not in self.refresh_tokens:
            return 400, {"error": "invalid_grant",
                         "error_description": "Refresh token does not exist or has been revoked."}
        account = self.refresh_tokens[refresh]
        with self._lock:
            self.exchanges += 1
            access_token = f"sk_test_oauth{account}x{next(self._counter):08d}"
            self.access[access_token] = _Access(account, self.access_token_uses)
        return 200, {"access_token": access_token, "refresh_token": refresh, "token_type": "bearer",
                     "scope": "read_write", "livemode": False, "stripe_user_id": account_id(account),
                     "stripe_publishable_key": f"pk_test_oauth{account}"}

    def authenticate(self, key: str, path: str) -> tuple[int | None, tuple[int, str] | None]:
        """(account, None) for a usable access token, (None, (status, message)) when refused,
        (None, None) when `key` is not an access token."""
        access = self.access.get(key)
        if access is None:
            return None, None
        with self._lock:
            if access.uses_left is not None:
                if access.uses_left <= 0:
                    return None, (401, "Expired API Key provided: the OAuth access token has expired.")
                access.uses_left -= 1
        if path.startswith(OAUTH_FORBIDDEN):
            return None, (403, "This application does not have the required permissions for this endpoint. "
                               "Having the 'read_only' scope would allow this request to continue.")
        return access.account, None
