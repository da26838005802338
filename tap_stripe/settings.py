"""The tap's settings: their JSON Schema (shown by `--about`) and their validation.

`validate(config)` runs before any request and returns a `Settings` with defaults filled
in, or raises `ConfigError` whose message is one line naming the setting to fix. Values
are never echoed, so a misplaced secret cannot leak through an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_stripe.errors import ConfigError
from tap_stripe.streams.generated import API_VERSION

DEFAULT_FULL_RESYNC = ("customers", "invoices")
# How often a stream of `full_resync_streams` (and a full table with events) is re-read in
# full: the reconciliation that repairs anything events never reported. In between, events.
DEFAULT_FULL_RESYNC_EVERY_DAYS = 7
KEY_PATTERN = re.compile(r"^(sk|rk)_(live|test)_[0-9A-Za-z_]+$")

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("api_key", th.StringType, secret=True,
                description="Secret (`sk_…`) or restricted (`rk_…`) API key, sent as a Bearer token. "
                            "Not needed with OAuth settings."),
    th.Property("account_id", th.StringType,
                description="A connected account to read (`acct_…`), sent as `Stripe-Account`."),
    th.Property("account_ids", th.ArrayType(th.StringType),
                description="Several connected accounts to read in one run."),
    th.Property("connected_accounts", th.StringType, allowed_values=["all"],
                description="`all`: list the platform's accounts through /v1/accounts and read each."),
    th.Property("account_shard", th.StringType,
                description="`i/N`: read only the i-th of N stable, disjoint subsets of the accounts."),
    th.Property("start_date", th.DateTimeType,
                description="RFC 3339 date; objects created before it are not read. Default: all history."),
    th.Property("end_date", th.DateTimeType,
                description="RFC 3339 date; exclusive upper bound on `created`. Default: the run's start."),
    th.Property("lookback_seconds", th.IntegerType, default=300,
                description="Re-read this many seconds before each bookmark, for objects that become "
                            "visible late."),
    th.Property("api_url", th.StringType, default="https://api.stripe.com",
                description="Base URL of the API (the sandbox, proxies and tests point it elsewhere)."),
    th.Property("files_url", th.StringType, default="https://files.stripe.com",
                description="Base URL of Stripe's file downloads (report results)."),
    th.Property("api_version", th.StringType, default=API_VERSION,
                description="Sent as `Stripe-Version` on every request; the schemas match this version."),
    th.Property("request_timeout", th.NumberType, default=80,
                description="Seconds to wait for a response (read timeout)."),
    th.Property("connect_timeout", th.NumberType, default=10,
                description="Seconds to wait for a connection."),
    th.Property("user_agent", th.StringType, description="User-Agent header; default `tap-stripe/<version>`."),
    th.Property("expand", th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
                description="Extra fields to expand, per stream: `{\"charges\": [\"customer\"]}`."),
    th.Property("max_retries", th.IntegerType, default=8,
                description="Retries of a request that failed in a retryable way (429, 409, 5xx, timeouts)."),
    th.Property("max_backoff_seconds", th.NumberType, default=60,
                description="Longest wait between two retries."),
    th.Property("on_permission_error", th.StringType, default="skip", allowed_values=["skip", "fail"],
                description="A stream the key may not read: `skip` it with a warning, or `fail` the run."),
    th.Property("ca_bundle", th.StringType,
                description="Path to a CA bundle (corporate proxies). Certificates are always verified."),
    th.Property("max_requests_per_second", th.NumberType,
                description="Global request budget. Default: 80% of Stripe's limit for the key's mode "
                            "(80 live, 20 test)."),
    th.Property("max_requests_per_second_per_endpoint", th.NumberType,
                description="Budget per API operation. Default 20 (80% of Stripe's 25)."),
    th.Property("max_workers", th.IntegerType,
                description="Upper bound on requests in flight. By default the tap keeps as many in flight as "
                            "the rate budget needs at the latency it observes (rate × latency, with headroom)."),
    th.Property("full_resync_streams", th.ArrayType(th.StringType), default=list(DEFAULT_FULL_RESYNC),
                description="Streams reconciled by a periodic full re-read (with table versions), every "
                            "`full_resync_every_days`; events carry their changes in between."),
    th.Property("full_resync_every_days", th.NumberType, default=DEFAULT_FULL_RESYNC_EVERY_DAYS,
                description="Days between two full re-reads of a `full_resync_streams` stream or of a full "
                            "table with events; the first run past the interval does it (0: every run)."),
    th.Property("reread_days", th.ObjectType(additional_properties=th.NumberType),
                description="Streams whose objects change without events, re-read this many days back each run "
                            "(balance transactions need none: their pending ones are re-read until settled)."),
    th.Property("updates_mode", th.StringType, default="refetch", allowed_values=["refetch", "snapshot"],
                description="Changed objects found in events: `refetch` them by id (pinned API version, "
                            "expansions) or emit the event's `snapshot`."),
    th.Property("oauth_client_id", th.StringType, description="Connect OAuth: the platform's client id."),
    th.Property("oauth_client_secret", th.StringType, secret=True,
                description="Connect OAuth: the platform's secret key used for the token exchange."),
    th.Property("oauth_refresh_token", th.StringType, secret=True,
                description="Connect OAuth: the connected account's refresh token."),
    th.Property("oauth_url", th.StringType, default="https://connect.stripe.com",
                description="Base URL of Stripe's OAuth token endpoint."),
    th.Property("sensitive_data", th.ObjectType(
        th.Property("categories", th.ObjectType(additional_properties=th.StringType)),
        th.Property("fields", th.ObjectType(additional_properties=th.StringType)),
    ), description="Protect personal data in flight: {\"categories\": {\"contact\": \"hash\"}, "
                   "\"fields\": {\"customers.email\": \"mask\"}}; policies keep, hash, mask, drop."),
    th.Property("sensitive_hash_key", th.StringType, secret=True,
                description="Secret key of the `hash` policy (HMAC-SHA256); the same key gives the same "
                            "hashes across runs and streams."),
    th.Property("report_interval", th.StringType, default="day", allowed_values=["day", "sync"],
                description="Report streams: `day` runs one report per complete day (of `report_timezone`), "
                            "`sync` one report from the bookmark to Stripe's data_available_end."),
    th.Property("report_columns", th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
                description="Report streams: the columns to request, per report stream."),
    th.Property("report_timezone", th.StringType,
                description="Report streams: IANA time zone for day boundaries and the report (default UTC)."),
    th.Property("report_versions", th.ObjectType(additional_properties=th.StringType),
                description="Report streams: pin a report type version per stream (default: the newest "
                            "the account offers)."),
    th.Property("report_poll_timeout_seconds", th.NumberType, default=600,
                description="Report streams: how long to wait for a report run before leaving its interval "
                            "to the next sync."),
    th.Property("summary_file", th.StringType,
                description="Write the run summary as JSON to this path."),
    th.Property("progress_interval_seconds", th.NumberType, default=10,
                description="Seconds between progress lines on stderr (0 turns them off)."),
    th.Property("schema_evolution", th.BooleanType, default=True,
                description="A field a stream's schema lacks (a newer API version, a field Stripe adds) is added "
                            "to it, typed from its value and nullable, with an updated SCHEMA before the first "
                            "record that has it; false drops such fields."),
    th.Property("custom_streams", th.ArrayType(th.ObjectType(
        th.Property("name", th.StringType, required=True),
        th.Property("path", th.StringType, required=True),
        th.Property("key", th.CustomType({"type": ["string", "array"], "items": {"type": "string"}})),
        th.Property("created", th.BooleanType),
        th.Property("object", th.StringType),
        th.Property("event_types", th.ArrayType(th.StringType)),
        th.Property("params", th.ObjectType(additional_properties=th.StringType)),
    )), description="More list endpoints as streams: [{\"name\": \"billing_widgets\", \"path\": "
                    "\"/v1/billing/widgets\", \"key\": \"id\", \"created\": true}] (README: Custom streams)."),
).to_dict()


@dataclass
class Settings:
    api_key: str | None
    account_ids: list[str] | None
    connected_accounts: bool
    shard: tuple[int, int] | None
    start: int | None
    end: int | None
    lookback: int
    api_url: str
    files_url: str
    api_version: str
    request_timeout: float
    connect_timeout: float
    user_agent: str
    expand: dict[str, list[str]]
    max_retries: int
    max_backoff_seconds: float
    on_permission_error: str
    ca_bundle: str | None
    max_rps: float | None
    max_rps_endpoint: float | None
    max_workers: int | None
    full_resync_streams: frozenset[str]
    reread_days: dict[str, float]
    updates_mode: str
    oauth: dict[str, str] | None
    oauth_url: str
    summary_file: str | None
    progress_interval: float
    report_interval: str
    report_columns: dict[str, list[str]]
    report_timezone: str | None
    report_versions: dict[str, str]
    report_poll_timeout: float
    multi_account: bool  # several accounts: ids can repeat across them
    schema_evolution: bool = True
    full_resync_every: int = DEFAULT_FULL_RESYNC_EVERY_DAYS * 86400  # seconds between two full re-reads


def several_accounts(config: Mapping[str, Any]) -> bool:
    """Whether a run reads several accounts (then ids can repeat across accounts)."""
    return bool(config.get("connected_accounts") or len(config.get("account_ids") or []) > 1
                or config.get("account_shard"))


def _timestamp(config: dict, name: str) -> int | None:
    value = config.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ConfigError(f"setting '{name}' must be an RFC 3339 date-time string, e.g. 2024-01-31T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"setting '{name}' is not an RFC 3339 date-time (e.g. 2024-01-31T00:00:00Z)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp())


def _default(name: str) -> Any:
    """A setting's default, as CONFIG_SCHEMA (and so `--about` and the README) declares it."""
    return CONFIG_SCHEMA["properties"][name].get("default")


def _number(config: dict, name: str, *, integer: bool = False, minimum: float = 0, allow_zero: bool = True) -> Any:
    value = config.get(name, _default(name))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or \
            (integer and not float(value).is_integer()):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"setting '{name}' must be {kind}")
    if value < minimum or (not allow_zero and value == 0):
        raise ConfigError(f"setting '{name}' must be {'greater than' if not allow_zero else 'at least'} {minimum}")
    return int(value) if integer else float(value)


def _flag(config: dict, name: str) -> bool:
    value = config.get(name, _default(name))
    if isinstance(value, str) and value.lower() in ("true", "false"):  # from the environment
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"setting '{name}' must be true or false")
    return value


def _url(config: dict, name: str) -> str:
    value = config.get(name) or _default(name)
    parts = urlsplit(value) if isinstance(value, str) else None
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"setting '{name}' must be an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "::1") and \
            not parts.hostname.startswith("127."):
        raise ConfigError(f"setting '{name}' uses plain http; only https is allowed, except on loopback "
                          "(127.0.0.1/localhost) for the sandbox")
    return value.rstrip("/")


def validate(config: dict, stream_names: set[str], expandable: dict[str, set[str]],
             version: str = "") -> Settings:
    """Check every setting and fill in defaults; raise ConfigError on the first problem."""
    api_key, oauth = _credentials(config)
    account_ids, connected, shard = _accounts(config, oauth)
    start, end = _dates(config)
    expand = _expand(config, stream_names, expandable)
    full_resync, reread = _stream_lists(config, stream_names)
    _choices(config, stream_names)
    _sensitive_data(config, stream_names)
    ca_bundle = _ca_bundle(config)
    return Settings(
        api_key=api_key,
        account_ids=account_ids,
        connected_accounts=bool(connected),
        shard=shard,
        start=start,
        end=end,
        lookback=_number(config, "lookback_seconds", integer=True),
        api_url=_url(config, "api_url"),
        files_url=_url(config, "files_url"),
        api_version=str(config.get("api_version") or _default("api_version")),
        request_timeout=_number(config, "request_timeout", allow_zero=False),
        connect_timeout=_number(config, "connect_timeout", allow_zero=False),
        user_agent=str(config.get("user_agent") or f"tap-stripe/{version}"),
        expand={k: list(v) for k, v in expand.items()},
        max_retries=_number(config, "max_retries", integer=True),
        max_backoff_seconds=_number(config, "max_backoff_seconds"),
        on_permission_error=config.get("on_permission_error") or _default("on_permission_error"),
        ca_bundle=ca_bundle,
        max_rps=_number(config, "max_requests_per_second", allow_zero=False),
        max_rps_endpoint=_number(config, "max_requests_per_second_per_endpoint", allow_zero=False),
        max_workers=_number(config, "max_workers", integer=True, minimum=1),
        full_resync_streams=frozenset(full_resync),
        reread_days=dict(reread),
        full_resync_every=int(_number(config, "full_resync_every_days") * 86400),
        updates_mode=config.get("updates_mode") or _default("updates_mode"),
        oauth=oauth or None,
        oauth_url=_url(config, "oauth_url"),
        summary_file=config.get("summary_file"),
        progress_interval=_number(config, "progress_interval_seconds"),
        report_interval=config.get("report_interval") or _default("report_interval"),
        report_columns=dict(config.get("report_columns") or {}),
        report_timezone=config.get("report_timezone") or None,
        report_versions=dict(config.get("report_versions") or {}),
        report_poll_timeout=_number(config, "report_poll_timeout_seconds"),
        multi_account=several_accounts(config),
        schema_evolution=_flag(config, "schema_evolution"),
    )


def _credentials(config: dict) -> tuple[str | None, dict[str, str]]:
    """The API key, or the OAuth settings (all three or none)."""
    oauth_keys = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")
    oauth = {k: config[k] for k in oauth_keys if config.get(k)}
    if oauth and len(oauth) != len(oauth_keys):
        missing = [k for k in oauth_keys if k not in oauth]
        raise ConfigError(f"setting '{missing[0]}' is required with the other OAuth settings")
    api_key = config.get("api_key")
    if not oauth:
        if not api_key:
            raise ConfigError("setting 'api_key' is required (or TAP_STRIPE_API_KEY, or the OAuth settings)")
        if not isinstance(api_key, str) or not KEY_PATTERN.match(api_key):
            raise ConfigError("setting 'api_key' is not a Stripe secret or restricted key "
                              "(expected sk_live_…, sk_test_…, rk_live_… or rk_test_…)")
    elif not KEY_PATTERN.match(str(oauth["oauth_client_secret"])):
        raise ConfigError("setting 'oauth_client_secret' is not a Stripe secret key (expected sk_…)")

    return api_key, oauth


def _accounts(config: dict, oauth: dict[str, str]) -> tuple[list[str] | None, Any, tuple[int, int] | None]:
    """The accounts to read: `account_id(s)`, `connected_accounts`, `account_shard`."""
    account_ids = None
    if config.get("account_id"):
        if not re.fullmatch(r"acct_[0-9A-Za-z]+", str(config["account_id"])):
            raise ConfigError("setting 'account_id' must look like acct_…")
        account_ids = [config["account_id"]]
    if config.get("account_ids"):
        ids = config["account_ids"]
        if not isinstance(ids, list) or \
                not all(isinstance(i, str) and re.fullmatch(r"acct_[0-9A-Za-z]+", i) for i in ids):
            raise ConfigError("setting 'account_ids' must be a list of account ids (acct_…)")
        if account_ids:
            raise ConfigError("settings 'account_id' and 'account_ids' exclude each other; use one")
        account_ids = list(dict.fromkeys(ids))
    connected = config.get("connected_accounts")
    if connected not in (None, "", "all"):
        raise ConfigError("setting 'connected_accounts' must be \"all\"")
    if connected and account_ids:
        raise ConfigError("setting 'connected_accounts' excludes 'account_id' and 'account_ids'")
    if oauth and (connected or account_ids):
        raise ConfigError("OAuth settings read the token's own account; remove 'account_id(s)'/'connected_accounts'")
    shard = None
    if config.get("account_shard"):
        match = re.fullmatch(r"(\d+)/(\d+)", str(config["account_shard"]))
        if not match or not 0 <= int(match[1]) < int(match[2]):
            raise ConfigError("setting 'account_shard' must be i/N with 0 <= i < N, e.g. 0/3")
        if not (connected or account_ids):
            raise ConfigError("setting 'account_shard' needs 'connected_accounts' or 'account_ids'")
        shard = (int(match[1]), int(match[2]))

    return account_ids, connected, shard


def _dates(config: dict) -> tuple[int | None, int | None]:
    start = _timestamp(config, "start_date")
    end = _timestamp(config, "end_date")
    if start is not None and end is not None and end <= start:
        raise ConfigError("setting 'end_date' must be after 'start_date'")

    return start, end


def _expand(config: dict, stream_names: set[str], expandable: dict[str, set[str]]) -> dict[str, list[str]]:
    expand = config.get("expand") or {}
    if not isinstance(expand, dict):
        raise ConfigError("setting 'expand' must be an object of stream name to a list of fields")
    for stream, fields in expand.items():
        if stream not in stream_names:
            raise ConfigError(f"setting 'expand' names unknown stream '{stream}'")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise ConfigError(f"setting 'expand.{stream}' must be a list of field names")
        for name in fields:
            if name.split(".")[0] not in expandable.get(stream, set()):
                allowed = ", ".join(sorted(expandable.get(stream, set()))) or "none"
                raise ConfigError(f"setting 'expand.{stream}': '{name}' is not expandable "
                                  f"(expandable: {allowed})")

    return expand


def _stream_lists(config: dict, stream_names: set[str]) -> tuple[list[str], dict[str, float]]:
    """`full_resync_streams` and `reread_days`: known streams only."""
    full_resync = config.get("full_resync_streams", _default("full_resync_streams"))
    if not isinstance(full_resync, list) or not all(isinstance(s, str) for s in full_resync):
        raise ConfigError("setting 'full_resync_streams' must be a list of stream names")
    for stream in full_resync:
        if stream not in stream_names:
            raise ConfigError(f"setting 'full_resync_streams' names unknown stream '{stream}'")

    reread = config.get("reread_days") or {}
    if not isinstance(reread, dict):
        raise ConfigError("setting 'reread_days' must be an object of stream name to a number of days")
    for stream, days in reread.items():
        if stream not in stream_names:
            raise ConfigError(f"setting 'reread_days' names unknown stream '{stream}'")
        if isinstance(days, bool) or not isinstance(days, (int, float)) or days < 0:
            raise ConfigError(f"setting 'reread_days.{stream}' must be a number of days (0 or more)")

    return full_resync, reread


def _choices(config: dict, stream_names: set[str]) -> None:
    """Settings with a fixed set of values, and the report streams' choices."""
    for name in ("on_permission_error", "updates_mode", "report_interval"):
        allowed = CONFIG_SCHEMA["properties"][name]["enum"]
        if config.get(name) not in (None, *allowed):
            raise ConfigError(f"setting '{name}' must be one of: {', '.join(allowed)}")
    report_streams = {name for name in stream_names if name.startswith("report_")}
    for name in ("report_columns", "report_versions"):
        value = config.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"setting '{name}' must be an object keyed by report stream")
        for stream, choice in value.items():
            if stream not in report_streams:
                raise ConfigError(f"setting '{name}' names '{stream}', which is not a report stream")
            ok = isinstance(choice, list) and all(isinstance(c, str) for c in choice) if name == "report_columns" \
                else isinstance(choice, str) and bool(re.fullmatch(r"([a-z_.]+\.)?\d+", choice))
            if not ok:
                raise ConfigError(f"setting '{name}.{stream}' must be " +
                                  ("a list of column names" if name == "report_columns" else 'a version like "3"'))
    if config.get("report_timezone"):
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(str(config["report_timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("setting 'report_timezone' is not an IANA time zone (e.g. Europe/Paris)") from None


def _sensitive_data(config: dict, stream_names: set[str]) -> None:
    if config.get("sensitive_data") is not None:  # the classification is read only when needed
        from tap_stripe import sensitive

        try:
            classification = sensitive.load_classification()
            if not classification.keys() >= stream_names:  # streams of `custom_streams`: no classified fields
                classification = {**{name: {} for name in stream_names}, **classification}
            sensitive.validate_policy(config, classification)
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None


def _ca_bundle(config: dict) -> str | None:
    ca_bundle = config.get("ca_bundle")
    if ca_bundle is not None:
        import os

        if not isinstance(ca_bundle, str) or not os.path.isfile(ca_bundle):
            raise ConfigError("setting 'ca_bundle' must be the path of a readable CA bundle file")

    return ca_bundle
