"""The tap's settings: their JSON Schema (shown by `--about`) and their validation.

`validate(config)` runs before any request and returns a `Settings` with defaults filled
in, or raises `ConfigError` whose message is one line naming the setting to fix. Types,
choices, bounds and forms are checked against CONFIG_SCHEMA itself (`schema_problem`); the
code here checks what a schema cannot say: settings that go together or exclude each other,
streams that exist, dates in order, a key that looks like a Stripe key, a file that exists.
Values are never echoed, so a misplaced secret cannot leak through an error.
"""

from __future__ import annotations

import copy
import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator, ValidationError, validators
from singer_sdk import typing as th

from tap_stripe.errors import ConfigError
from tap_stripe.streams.generated import API_VERSION

DEFAULT_FULL_RESYNC = ("customers", "invoices")
# How often a stream of `full_resync_streams` (and a full table with events) is re-read in
# full: the reconciliation that repairs anything events never reported. In between, events.
DEFAULT_FULL_RESYNC_EVERY_DAYS = 7
KEY_PATTERN = re.compile(r"^(sk|rk)_(live|test)_[0-9A-Za-z_]+$")
# `(?!\n)$`: the end of the text, in JSON Schema's regular expressions and in Python's, whose
# `$` also matches before a last newline (an id with one would break the Stripe-Account header).
ACCOUNT_PATTERN = r"^acct_[0-9A-Za-z]+(?!\n)$"

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("api_key", th.StringType, secret=True,
                description="Secret (`sk_…`) or restricted (`rk_…`) API key, sent as a Bearer token. "
                            "Not needed with OAuth settings."),
    th.Property("account_id", th.StringType(pattern=ACCOUNT_PATTERN),
                description="A connected account to read (`acct_…`), sent as `Stripe-Account`."),
    th.Property("account_ids", th.ArrayType(th.StringType(pattern=ACCOUNT_PATTERN)),
                description="Several connected accounts to read in one run."),
    th.Property("connected_accounts", th.StringType, allowed_values=["all"],
                description="`all`: list the platform's accounts through /v1/accounts and read each."),
    th.Property("account_shard", th.StringType(pattern=r"^\d+/\d+(?!\n)$"),
                description="`i/N`: read only the i-th of N stable, disjoint subsets of the accounts."),
    th.Property("start_date", th.DateTimeType,
                description="RFC 3339 date; objects created before it are not read. Default: all history."),
    th.Property("end_date", th.DateTimeType,
                description="RFC 3339 date; exclusive upper bound on `created`. Default: the run's start."),
    th.Property("lookback_seconds", th.IntegerType(minimum=0), default=300,
                description="Re-read this many seconds before each bookmark, for objects that become "
                            "visible late."),
    th.Property("api_url", th.StringType, default="https://api.stripe.com",
                description="Base URL of the API (the sandbox, proxies and tests point it elsewhere)."),
    th.Property("files_url", th.StringType, default="https://files.stripe.com",
                description="Base URL of Stripe's file downloads (report results)."),
    th.Property("api_version", th.StringType, default=API_VERSION,
                description="Sent as `Stripe-Version` on every request; the schemas match this version."),
    th.Property("request_timeout", th.NumberType(exclusive_minimum=0), default=80,
                description="Seconds to wait for a response (read timeout)."),
    th.Property("connect_timeout", th.NumberType(exclusive_minimum=0), default=10,
                description="Seconds to wait for a connection."),
    th.Property("user_agent", th.StringType, description="User-Agent header; default `tap-stripe/<version>`."),
    th.Property("expand", th.ObjectType(additional_properties=th.ArrayType(th.StringType)),
                description="Extra fields to expand, per stream: `{\"charges\": [\"customer\"]}`."),
    th.Property("max_retries", th.IntegerType(minimum=0), default=8,
                description="Retries of a request that failed in a retryable way (429, 409, 5xx, timeouts)."),
    th.Property("max_backoff_seconds", th.NumberType(minimum=0), default=60,
                description="Longest wait between two retries."),
    th.Property("on_permission_error", th.StringType, default="skip", allowed_values=["skip", "fail"],
                description="A stream the key may not read: `skip` it with a warning, or `fail` the run."),
    th.Property("ca_bundle", th.StringType,
                description="Path to a CA bundle (corporate proxies). Certificates are always verified."),
    th.Property("max_requests_per_second", th.NumberType(exclusive_minimum=0),
                description="Global request budget. Default: 80% of Stripe's limit for the key's mode "
                            "(80 live, 20 test)."),
    th.Property("max_requests_per_second_per_endpoint", th.NumberType(exclusive_minimum=0),
                description="Budget per API operation. Default 20 (80% of Stripe's 25)."),
    th.Property("max_workers", th.IntegerType(minimum=1),
                description="Upper bound on requests in flight. By default the tap keeps as many in flight as "
                            "the rate budget needs at the latency it observes (rate × latency, with headroom)."),
    th.Property("full_resync_streams", th.ArrayType(th.StringType), default=list(DEFAULT_FULL_RESYNC),
                description="Streams reconciled by a periodic full re-read (with table versions), every "
                            "`full_resync_every_days`; events carry their changes in between."),
    th.Property("full_resync_every_days", th.NumberType(minimum=0), default=DEFAULT_FULL_RESYNC_EVERY_DAYS,
                description="Days between two full re-reads of a `full_resync_streams` stream or of a full "
                            "table with events; the first run past the interval does it (0: every run)."),
    th.Property("reread_days", th.ObjectType(additional_properties=th.NumberType(minimum=0)),
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
    th.Property("report_versions", th.ObjectType(additional_properties=th.StringType(pattern=r"^([a-z_.]+\.)?\d+$")),
                description="Report streams: pin a report type version per stream (default: the newest "
                            "the account offers)."),
    th.Property("report_poll_timeout_seconds", th.NumberType(minimum=0), default=600,
                description="Report streams: how long to wait for a report run before leaving its interval "
                            "to the next sync."),
    th.Property("summary_file", th.StringType,
                description="Write the run summary as JSON to this path."),
    th.Property("progress_interval_seconds", th.NumberType(minimum=0), default=10,
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


def _whole(checker: Any, value: Any) -> bool:
    """An integer, as JSON Schema has it, or a whole Decimal (the SDK reads `8.0` in a config
    file as one)."""
    return Draft202012Validator.TYPE_CHECKER.is_type(value, "integer") or (
        isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value())


# The tap's own settings, as declared above. The SDK adds its built-in ones (stream maps,
# flattening, batches) to CONFIG_SCHEMA in place; those are checked where they are read.
SCHEMA_CHECK = validators.extend(Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
    "integer", _whole))(copy.deepcopy(CONFIG_SCHEMA))
OWN_SETTINGS: dict[str, dict] = SCHEMA_CHECK.schema["properties"]
KINDS = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
         "array": "a list", "object": "an object"}
# What the value of a setting with a `pattern` looks like, for the message when it does not.
LOOKS_LIKE = {"account_id": "an account id (acct_…)", "account_ids": "an account id (acct_…)",
              "account_shard": "i/N with 0 <= i < N, e.g. 0/3", "report_versions": 'a version like "3"'}


def several_accounts(config: Mapping[str, Any]) -> bool:
    """Whether a run reads several accounts (then ids can repeat across accounts)."""
    return bool(config.get("connected_accounts") or len(config.get("account_ids") or []) > 1
                or config.get("account_shard"))


def validate(config: dict, stream_names: set[str], expandable: dict[str, set[str]],
             version: str = "") -> Settings:
    """Check every setting and fill in defaults; raise ConfigError on the first problem."""
    given = given_settings(config)
    error = next(SCHEMA_CHECK.iter_errors(given), None)  # types, choices, bounds, forms
    if error is not None:
        raise ConfigError(schema_problem(error))
    api_key, oauth = _credentials(given)
    account_ids, shard = _accounts(given, oauth)
    start, end = _dates(given)
    _stream_names(given, stream_names, expandable)
    _sensitive_data(given, stream_names)
    _local_files(given)
    read = functools.partial(_read, given)
    return Settings(
        api_key=api_key, oauth=oauth or None, oauth_url=_url(given, "oauth_url"),
        account_ids=account_ids, connected_accounts="connected_accounts" in given, shard=shard,
        multi_account=several_accounts(config),
        start=start, end=end, lookback=read("lookback_seconds"),
        api_url=_url(given, "api_url"), files_url=_url(given, "files_url"), api_version=read("api_version"),
        user_agent=given.get("user_agent", f"tap-stripe/{version}"), ca_bundle=given.get("ca_bundle"),
        request_timeout=read("request_timeout"), connect_timeout=read("connect_timeout"),
        max_retries=read("max_retries"), max_backoff_seconds=read("max_backoff_seconds"),
        max_rps=read("max_requests_per_second"), max_rps_endpoint=read("max_requests_per_second_per_endpoint"),
        max_workers=read("max_workers"), on_permission_error=read("on_permission_error"),
        expand={stream: list(fields) for stream, fields in given.get("expand", {}).items()},
        full_resync_streams=frozenset(read("full_resync_streams")), reread_days=dict(given.get("reread_days", {})),
        full_resync_every=int(read("full_resync_every_days") * 86400), updates_mode=read("updates_mode"),
        summary_file=given.get("summary_file"), progress_interval=read("progress_interval_seconds"),
        report_interval=read("report_interval"), report_columns=dict(given.get("report_columns", {})),
        report_timezone=given.get("report_timezone"), report_versions=dict(given.get("report_versions", {})),
        report_poll_timeout=read("report_poll_timeout_seconds"), schema_evolution=read("schema_evolution"),
    )


def given_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """The settings `config` gives: null (every setting's type allows it) or an empty text
    setting (an environment variable set empty) is a setting left out; `true`/`false` as
    text is a flag. `custom_streams` is read (from JSON text too) by `configured.custom_streams`."""
    given = {}
    for name, value in config.items():
        types = OWN_SETTINGS.get(name, {}).get("type", [])
        if value is None or name == "custom_streams" or (value == "" and "string" in types):
            continue
        if "boolean" in types and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        given[name] = value
    return given


def schema_problem(error: ValidationError) -> str:
    """A JSON Schema error as one line: the setting (its path, `expand.charges`) and what it
    expects. Built from where the error is and what the schema says, never from
    `error.message` or `error.instance`, which hold the value."""
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
    expected: Any = error.validator_value
    if error.validator == "type":
        types = [t for t in ([expected] if isinstance(expected, str) else expected) if t != "null"]
        what = " or ".join(KINDS.get(t, t) for t in types)
        if error.schema.get("format") == "date-time":
            what = "an RFC 3339 date-time string, e.g. 2024-01-31T00:00:00Z"
    elif error.validator == "enum":
        what = f'"{expected[0]}"' if len(expected) == 1 else f"one of: {', '.join(map(str, expected))}"
    elif error.validator in ("minimum", "exclusiveMinimum"):
        what = f"{'at least' if error.validator == 'minimum' else 'greater than'} {expected}"
    elif error.validator == "pattern":
        what = LOOKS_LIKE.get(str(error.absolute_path[0]), f"of the form {expected}")
    else:
        return f"setting '{where}' is not valid ({error.validator})"
    return f"setting '{where}' must be {what}"


def _read(given: Mapping[str, Any], name: str) -> Any:
    """A setting's value, or its CONFIG_SCHEMA default (as `--about` and the README show it); numbers as float."""
    value = given.get(name, OWN_SETTINGS[name].get("default"))
    types = OWN_SETTINGS[name]["type"]
    if value is None or not {"integer", "number"} & set(types):
        return value
    return int(value) if "integer" in types else float(value)


def _url(given: Mapping[str, Any], name: str) -> str:
    value = _read(given, name)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"setting '{name}' must be an http(s) URL")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "::1") and \
            not parts.hostname.startswith("127."):
        raise ConfigError(f"setting '{name}' uses plain http; only https is allowed, except on loopback "
                          "(127.0.0.1/localhost) for the sandbox")
    return value.rstrip("/")


def _credentials(given: Mapping[str, Any]) -> tuple[str | None, dict[str, str]]:
    """The API key, or the OAuth settings (all three or none)."""
    oauth_keys = ("oauth_client_id", "oauth_client_secret", "oauth_refresh_token")
    oauth = {k: given[k] for k in oauth_keys if k in given}
    if oauth and len(oauth) != len(oauth_keys):
        missing = [k for k in oauth_keys if k not in oauth]
        raise ConfigError(f"setting '{missing[0]}' is required with the other OAuth settings")
    api_key = given.get("api_key")
    if not oauth:
        if not api_key:
            raise ConfigError("setting 'api_key' is required (or TAP_STRIPE_API_KEY, or the OAuth settings)")
        if not KEY_PATTERN.fullmatch(api_key):  # a line break read from a file with it, too
            raise ConfigError("setting 'api_key' is not a Stripe secret or restricted key (expected sk_live_…, "
                              "sk_test_…, rk_live_… or rk_test_…, without spaces or line breaks)")
    elif not KEY_PATTERN.fullmatch(oauth["oauth_client_secret"]):
        raise ConfigError("setting 'oauth_client_secret' is not a Stripe secret key (expected sk_…)")
    return api_key, oauth


def _accounts(given: Mapping[str, Any], oauth: dict[str, str]) -> tuple[list[str] | None, tuple[int, int] | None]:
    """The accounts to read (`account_id(s)`, `connected_accounts`) and the `account_shard`."""
    account_ids = [given["account_id"]] if "account_id" in given else None
    if given.get("account_ids"):
        if account_ids:
            raise ConfigError("settings 'account_id' and 'account_ids' exclude each other; use one")
        account_ids = list(dict.fromkeys(given["account_ids"]))
    connected = "connected_accounts" in given
    if connected and account_ids:
        raise ConfigError("setting 'connected_accounts' excludes 'account_id' and 'account_ids'")
    if oauth and (connected or account_ids):
        raise ConfigError("OAuth settings read the token's own account; remove 'account_id(s)'/'connected_accounts'")
    if "account_shard" not in given:
        return account_ids, None
    index, count = (int(n) for n in given["account_shard"].split("/"))
    if index >= count:
        raise ConfigError(f"setting 'account_shard' must be {LOOKS_LIKE['account_shard']}")
    if not (connected or account_ids):
        raise ConfigError("setting 'account_shard' needs 'connected_accounts' or 'account_ids'")
    return account_ids, (index, count)


def _dates(given: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """`start_date` and `end_date` in unix seconds (a date-time without a zone is UTC)."""
    dates: list[int | None] = []
    for name in ("start_date", "end_date"):
        try:
            parsed = datetime.fromisoformat(given[name].replace("Z", "+00:00")) if name in given else None
        except ValueError:
            raise ConfigError(f"setting '{name}' is not an RFC 3339 date-time (e.g. 2024-01-31T00:00:00Z)") from None
        dates.append(None if parsed is None else int(parsed.replace(tzinfo=parsed.tzinfo or timezone.utc).timestamp()))
    start, end = dates
    if start is not None and end is not None and end <= start:
        raise ConfigError("setting 'end_date' must be after 'start_date'")
    return start, end


def _stream_names(given: Mapping[str, Any], stream_names: set[str], expandable: dict[str, set[str]]) -> None:
    """The settings keyed by (or listing) streams name streams there are (the report
    settings: report streams), and `expand` fields that can be expanded."""
    for name in ("expand", "full_resync_streams", "reread_days"):
        for stream in given.get(name, ()):
            if stream not in stream_names:
                raise ConfigError(f"setting '{name}' names unknown stream '{stream}'")
    report_streams = {name for name in stream_names if name.startswith("report_")}
    for name in ("report_columns", "report_versions"):
        for stream in given.get(name, ()):
            if stream not in report_streams:
                raise ConfigError(f"setting '{name}' names '{stream}', which is not a report stream")
    for stream, fields in given.get("expand", {}).items():
        for field in fields:
            if field.split(".")[0] not in expandable.get(stream, set()):
                allowed = ", ".join(sorted(expandable.get(stream, set()))) or "none"
                raise ConfigError(f"setting 'expand.{stream}': '{field}' is not expandable "
                                  f"(expandable: {allowed})")


def _sensitive_data(given: Mapping[str, Any], stream_names: set[str]) -> None:
    from tap_stripe.sensitive.protect import validate_policy

    try:
        validate_policy(given, stream_names)
    except ValueError as exc:
        raise ConfigError(str(exc).splitlines()[0]) from None


def _local_files(given: Mapping[str, Any]) -> None:
    """What the machine must have: the time zone's entry in the time zone database, the CA bundle."""
    if "report_timezone" in given:
        try:
            ZoneInfo(given["report_timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError("setting 'report_timezone' is not an IANA time zone (e.g. Europe/Paris)") from None
    if "ca_bundle" in given and not os.path.isfile(given["ca_bundle"]):
        raise ConfigError("setting 'ca_bundle' must be the path of a readable CA bundle file")
