"""Which Stripe accounts a run reads, and with which credentials.

- No account setting: the key's own account.
- `account_id` / `account_ids`: those connected accounts (`Stripe-Account` header).
- `connected_accounts: all`: every account `/v1/accounts` lists for the platform.
- `account_shard: i/N` keeps the accounts whose stable hash (SHA-256 of the id) modulo N is
  i, so N processes with shards 0/N … N-1/N cover every account exactly once, and adding an
  account never moves another one to a different shard.
- OAuth (Connect, Standard accounts): the refresh token is exchanged at `/oauth/token`
  for an access token used as the key, with the token's `stripe_user_id` as the account.
  When Stripe rejects the token mid-run, the client exchanges the refresh token again.

With several accounts, Connect's own tables (accounts and their persons, capabilities,
external accounts) are read once, from the platform.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import orjson
import requests

from tap_stripe.api.client import Credentials, StripeClient, TLS12Adapter, tls_context
from tap_stripe.errors import AuthenticationFailed, StripeError
from tap_stripe.settings import Settings

LOGGER = logging.getLogger("tap_stripe")
PLATFORM_FAMILIES = ("accounts",)


def credentials(settings: Settings) -> Credentials:
    if not settings.oauth:
        return Credentials(api_key=settings.api_key or "")
    return oauth_exchange(settings)


def oauth_exchange(settings: Settings) -> Credentials:
    """Exchange the refresh token for an access token (`grant_type=refresh_token`)."""
    oauth = settings.oauth or {}
    session = requests.Session()
    session.mount("https://", TLS12Adapter(tls_context(settings.ca_bundle)))
    try:
        response = session.post(
            f"{settings.oauth_url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": oauth["oauth_refresh_token"],
                  "client_id": oauth["oauth_client_id"]},
            headers={"Authorization": f"Bearer {oauth['oauth_client_secret']}"},
            timeout=(settings.connect_timeout, settings.request_timeout),
            verify=settings.ca_bundle or True,
        )
    except requests.RequestException as exc:
        raise StripeError(f"OAuth token exchange at {settings.oauth_url}/oauth/token failed: "
                          f"{type(exc).__name__}") from None
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        error: Any = body.get("error")
        if isinstance(error, dict):  # Stripe's API error shape
            error, description = error.get("code") or error.get("type"), error.get("message")
        else:  # OAuth's shape: {"error": "invalid_grant", "error_description": "..."}
            description = body.get("error_description")
        raise AuthenticationFailed(
            f"OAuth refresh token was refused (HTTP {response.status_code}, {error or 'no error code'}: "
            f"{description or 'no description'}); reconnect the account to get a new refresh token",
            status=response.status_code, path="/oauth/token")
    LOGGER.info("OAuth: exchanged the refresh token for an access token of account %s.",
                body.get("stripe_user_id"))
    return Credentials(api_key=body["access_token"], account_id=body.get("stripe_user_id"),
                       refresh=lambda: oauth_exchange(settings))


def shard_of(account_id: str, shards: int) -> int:
    return int.from_bytes(hashlib.sha256(account_id.encode()).digest()[:8], "big") % shards


def resolve(client: StripeClient, settings: Settings) -> list[str | None]:
    """The accounts this run reads, in a stable order."""
    if settings.oauth:
        return [client.credentials.account_id]
    if settings.connected_accounts:
        ids = list_connected_accounts(client)
    elif settings.account_ids:
        ids = list(settings.account_ids)
    else:
        return [None]
    if settings.shard:
        index, total = settings.shard
        ids = [i for i in ids if shard_of(i, total) == index]
        LOGGER.info("Shard %d/%d: %d accounts.", index, total, len(ids))
    return list(sorted(ids))


def list_connected_accounts(client: StripeClient) -> list[str]:
    from tap_stripe.api.pagination import list_pages

    ids: list[str] = []
    for body in list_pages(client, "/v1/accounts", [], account=None, endpoint="/v1/accounts",
                           stream="accounts"):
        ids.extend(obj["id"] for obj in body.get("data") or [])
    return ids


def platform_streams(settings: Settings) -> tuple[set[str], bool]:
    """Families read once from the platform rather than per connected account, and whether
    this process reads them (with shards, only shard 0 does)."""
    if settings.multi_account:
        return set(PLATFORM_FAMILIES), not settings.shard or settings.shard[0] == 0
    return set(), False
