"""Stripe financial reports (Reporting API v1) as streams: one stream per report family.

A report is not a list endpoint: the tap asks Stripe to *run* it for an interval
(`POST /v1/reporting/report_runs`), polls the run until it is `succeeded` or `failed`,
downloads the CSV that the run's `result` file points at and turns its rows into records.

Pieces the engine calls (see the module API at the bottom of this docstring):

- `REPORT_STREAMS`: one `ReportSpec` per report family (Striim's report tables).
- `report_schema(spec, columns)`, `report_key_properties(spec)`: discovery, offline.
- `plan_report(...)`: what to run since the bookmark (a list of `ReportTask`s).
- `run_report(...)`: run one task and return its records (raises `ReportFailed`).

Design decisions (documented for the README):

- **Version**: the newest version of the family that `GET /v1/reporting/report_types` offers
  the account (cached per client and account for a few minutes); `report_versions` pins one.
- **Columns**: the schema is built from the reviewed column table below (default columns of
  the newest documented version; every column name of every documented version has a type
  in `COLUMN_KINDS`). A run requests `parameters[columns][]` explicitly: the configured
  `report_columns[stream]`, else the table's columns that the account's report type lists in
  its `default_columns` (so an older pinned version never gets a column it does not know,
  and a newer version's extra columns do not appear outside the schema). Schema columns a
  run did not request come out as null.
- **Types**: amounts (`gross`, `fee`, `net`, `net_amount`, `customer_facing_amount`) are
  `decimal.Decimal` in the record, schema `{"type": ["number", "null"]}`: exact, and a JSON
  number for targets (the writer must serialise Decimal as a JSON number, see REPORT.md);
  time columns become RFC 3339 UTC strings (`format: date-time`); columns without `_utc`
  are in the requested `timezone` (UTC when none) and are converted to UTC; `count` is an
  integer; everything else, and any column not in the table, is a string.
- **Keys**: `_row_id`, a readable deterministic string: the balance transaction id for
  itemized reports whose rows are balance transactions (a transaction appears in one
  interval only, so re-running with other interval settings upserts the same rows), prefixed
  with the snapshot time for ending-balance reports and with the payout for single-payout
  reports; for summaries the interval (or payout) plus currency and category. When the row
  lacks those columns (a custom `report_columns`), the report type, interval and row number.
- **Intervals**: `report_interval` = `day` (default: one run per day of `report_timezone`,
  UTC when unset; only complete days, so a day is read once, when all of it is available)
  or `sync` (one run from the bookmark to `data_available_end`). Ending-balance reports take
  only `interval_end`: one snapshot per day boundary (`day`) or at `data_available_end`.
  The bookmark is the interval end (unix seconds); the first run starts at the tap's
  `start_date`, or `data_available_start` when there is none.
- **Single-payout reports**: one run per paid automatic payout created after the bookmark
  (`GET /v1/payouts?created[gt]=bookmark`), oldest first; failed/canceled and manual payouts
  are skipped. A payout still `pending`/`in_transit` stops the plan there (it will be paid),
  unless it is still so a week after its arrival date: then its id is remembered in the
  stream's state (`report_pending`, at most `MAX_PENDING_PAYOUTS`; when full, the plan stops
  there) and later payouts go on. Each run first re-reads the remembered payouts
  (`GET /v1/payouts/{id}`): paid ones are read (and forgotten once their rows are emitted),
  failed/canceled or missing ones are forgotten. The bookmark after a run is the payout's
  `created`, one second less while that second still holds a payout not yet done (a sibling
  read by a later run, or the payout the plan stopped at), so neither a crash nor a payout
  still in transit is ever skipped: every payout created up to the bookmark had its rows
  emitted, was skipped, or is remembered as pending.
- **Idempotency**: the run is created with `Idempotency-Key` = a hash of (account, report
  type, parameters), so a crash between creating and reading a run, or a poll timeout,
  gets the *same* run back on the next attempt (Stripe replays it for 24 h). A run that
  failed and is replayed again later (created more than a minute before the request) is
  retried with a key derived from the failed run's id, so a failure does not stick for 24 h.
- **Live mode**: Stripe serves report types to live-mode keys only; the sandbox accepts
  test keys.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_stripe.client import StripeClient, StripeError
from tap_stripe.pagination import list_pages
from tap_stripe.records import rfc3339
from tap_stripe.windows import created_params

LOGGER = logging.getLogger("tap_stripe")

DAY = 86400

# --------------------------------------------------------------------------- columns
# Column kinds: "decimal" (amount in major units, exact), "datetime" (time; `*_utc` in UTC,
# the others in the run's timezone), "integer", "string".
#
# Source: Stripe's "Balance report type" and "Payout reconciliation report type" pages
# (https://docs.stripe.com/reports/report-types/balance ,
#  https://docs.stripe.com/reports/report-types/payout-reconciliation), read from a stored
# copy in the search corpus. Every column those pages list for any version of the eleven
# families is below; the per-family default lists are the subset judged "default" (the
# stored copies lost the Default check marks, so the run intersects them with the live
# report type's `default_columns`).
_DECIMAL = ("gross", "fee", "net", "net_amount", "customer_facing_amount")
_DATETIME = (
    "created_utc", "created", "available_on_utc", "available_on", "effective_at_utc", "effective_at",
    "automatic_payout_effective_at_utc", "automatic_payout_effective_at", "charge_created_utc",
    "charge_created", "payout_expected_arrival_date", "payout_reversed_at_utc", "payout_reversed_at",
)
_INTEGER = ("count",)
_STRING = (
    "balance_transaction_id", "category", "currency", "description", "reporting_category", "source_id",
    "customer_facing_currency", "automatic_payout_id", "customer_id", "customer_email", "customer_name",
    "customer_description", "charge_id", "payment_intent_id", "invoice_id", "invoice_number", "order_id",
    "subscription_id", "payment_method_type", "is_link", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country", "connected_account_direct_charge_id", "destination_payment_id",
    "regulatory_tag", "trace_id", "trace_id_status", "payout_id", "payout_status", "payout_type",
    "payout_description", "payout_destination_id",
    "shipping_address_line1", "shipping_address_line2", "shipping_address_city", "shipping_address_state",
    "shipping_address_postal_code", "shipping_address_country",
    "card_address_line1", "card_address_line2", "card_address_city", "card_address_state",
    "card_address_postal_code", "card_address_country",
    "customer_address_line1", "customer_address_line2", "customer_address_city", "customer_address_state",
    "customer_address_postal_code", "customer_address_country",
    "customer_shipping_address_line1", "customer_shipping_address_line2", "customer_shipping_address_city",
    "customer_shipping_address_state", "customer_shipping_address_postal_code",
    "customer_shipping_address_country",
)
COLUMN_KINDS: dict[str, str] = {
    **{c: "decimal" for c in _DECIMAL}, **{c: "datetime" for c in _DATETIME},
    **{c: "integer" for c in _INTEGER}, **{c: "string" for c in _STRING},
}
"""Every documented column of the eleven families → kind. `*_metadata[key]` and unknown → string."""

_KIND_SCHEMA: dict[str, dict] = {
    "decimal": {"type": ["number", "null"]},
    "datetime": {"type": ["string", "null"], "format": "date-time"},
    "integer": {"type": ["integer", "null"]},
    "string": {"type": ["string", "null"]},
}

_SUMMARY = ("reporting_category", "currency", "count", "gross", "fee", "net")
_BALANCE_SUMMARY = ("category", "description", "net_amount", "currency")
# balance_change_from_activity.itemized.3 (also the core of the other itemized types)
_ACTIVITY_ITEMIZED = (
    "balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency",
    "gross", "fee", "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "automatic_payout_id", "automatic_payout_effective_at_utc",
    "automatic_payout_effective_at", "customer_id", "customer_email", "customer_name",
    "customer_description", "charge_id", "payment_intent_id", "charge_created_utc", "charge_created",
    "invoice_id", "subscription_id", "payment_method_type", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country",
)
# payouts.itemized.3
_PAYOUTS_ITEMIZED = (
    "payout_id", "effective_at_utc", "effective_at", "currency", "gross", "fee", "net", "reporting_category",
    "description", "payout_expected_arrival_date", "payout_status", "payout_reversed_at_utc",
    "payout_reversed_at", "payout_type", "payout_description", "payout_destination_id",
    "balance_transaction_id", "trace_id", "trace_id_status",
)
# payout_reconciliation.itemized.5 / by_id.itemized.4 / ending_balance_reconciliation.itemized.4
_RECON_ITEMIZED = (
    "automatic_payout_id", "automatic_payout_effective_at_utc", "automatic_payout_effective_at",
    "balance_transaction_id", "created_utc", "created", "available_on_utc", "available_on", "currency",
    "gross", "fee", "net", "reporting_category", "source_id", "description", "customer_facing_amount",
    "customer_facing_currency", "customer_id", "customer_email", "customer_name", "customer_description",
    "charge_id", "payment_intent_id", "charge_created_utc", "charge_created", "invoice_id",
    "subscription_id", "payment_method_type", "card_brand", "card_funding", "card_country",
    "statement_descriptor", "dispute_reason", "connected_account_id", "connected_account_name",
    "connected_account_country", "trace_id", "trace_id_status",
)
_BY_ID_ITEMIZED = tuple(c for c in _RECON_ITEMIZED if not c.startswith("automatic_payout_effective_at"))


def _cols(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((name, COLUMN_KINDS.get(name, "string")) for name in names)


@dataclass(frozen=True)
class ReportSpec:
    name: str
    """Stream name."""
    family: str
    """Report type without its version, e.g. `payouts.itemized`."""
    params: str
    """`interval` (interval_start + interval_end), `interval_end` (snapshot) or `payout`."""
    columns: tuple[tuple[str, str], ...]
    """(column, kind) for the default columns; `column_schema(kind)` is its JSON schema."""
    documented_version: int
    """The newest version the column table was reviewed against."""
    timezone_from: int | None
    """First version that accepts `parameters[timezone]` (None: no version does)."""
    itemized: bool
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


REPORT_STREAMS: tuple[ReportSpec, ...] = (
    ReportSpec("report_balance_summary", "balance.summary", "interval", _cols(_BALANCE_SUMMARY), 1, 1, False,
               "Balance summary: starting balance, activity, payouts and ending balance per currency."),
    ReportSpec("report_balance_change_from_activity_summary", "balance_change_from_activity.summary", "interval",
               _cols(_SUMMARY), 1, 1, False, "Balance change from activity, per reporting category."),
    ReportSpec("report_balance_change_from_activity_itemized", "balance_change_from_activity.itemized",
               "interval", _cols(_ACTIVITY_ITEMIZED), 3, 3, True,
               "Every balance transaction except payouts, with customer/charge details."),
    ReportSpec("report_payouts_summary", "payouts.summary", "interval", _cols(_SUMMARY), 1, 1, False,
               "Payouts per reporting category."),
    ReportSpec("report_payouts_itemized", "payouts.itemized", "interval", _cols(_PAYOUTS_ITEMIZED), 3, 3, True,
               "Every payout (and payout reversal) that affected the balance."),
    ReportSpec("report_payout_reconciliation_summary", "payout_reconciliation.summary", "interval",
               _cols(_SUMMARY), 1, 1, False, "Transactions settled in payouts of the interval, per category."),
    ReportSpec("report_payout_reconciliation_itemized", "payout_reconciliation.itemized", "interval",
               _cols(_RECON_ITEMIZED), 5, 4, True,
               "Every balance transaction settled in an automatic payout of the interval."),
    ReportSpec("report_payout_reconciliation_by_id_summary", "payout_reconciliation.by_id.summary", "payout",
               _cols(_SUMMARY), 1, None, False, "One payout's transactions per reporting category."),
    ReportSpec("report_payout_reconciliation_by_id_itemized", "payout_reconciliation.by_id.itemized", "payout",
               _cols(_BY_ID_ITEMIZED), 4, 4, True, "Every balance transaction settled in one payout."),
    ReportSpec("report_ending_balance_reconciliation_summary", "ending_balance_reconciliation.summary",
               "interval_end", _cols(_SUMMARY), 1, 1, False,
               "Transactions not yet paid out at the end of the interval, per category."),
    ReportSpec("report_ending_balance_reconciliation_itemized", "ending_balance_reconciliation.itemized",
               "interval_end", _cols(_RECON_ITEMIZED), 4, 3, True,
               "Every balance transaction not yet paid out at the end of the interval."),
)
REPORTS_BY_NAME: dict[str, ReportSpec] = {spec.name: spec for spec in REPORT_STREAMS}


def column_kind(column: str) -> str:
    return COLUMN_KINDS.get(column, "string")


def column_schema(kind: str) -> dict:
    return dict(_KIND_SCHEMA.get(kind, _KIND_SCHEMA["string"]))


# --------------------------------------------------------------------------- schema
_DT = {"type": ["string", "null"], "format": "date-time"}
_STR = {"type": ["string", "null"]}


def report_schema(spec: ReportSpec, columns: list[str] | None = None) -> dict:
    """The stream's JSON schema: the report columns (configured or default) + the tap's fields."""
    names = list(columns) if columns else spec.column_names
    properties: dict[str, dict] = {name: column_schema(column_kind(name)) for name in names}
    properties["_row_id"] = {"type": ["string"]}
    properties["_report_type"] = dict(_STR)
    properties["_report_run"] = dict(_STR)
    if spec.params == "interval":
        properties["_interval_start"] = dict(_DT)
    if spec.params in ("interval", "interval_end"):
        properties["_interval_end"] = dict(_DT)
    if spec.params == "payout":
        properties["_payout"] = dict(_STR)
    properties["_account_id"] = dict(_STR)
    properties["_updated_at"] = dict(_DT)
    return {"type": ["object"], "properties": properties}


def report_key_properties(spec: ReportSpec) -> tuple[str, ...]:
    return ("_row_id",)


def report_replication_key(spec: ReportSpec) -> str | None:
    """The record field that advances with the bookmark (for catalog metadata); None for single-payout
    reports, whose bookmark (the payout's `created`) is not a field of the rows."""
    return None if spec.params == "payout" else "_interval_end"


# --------------------------------------------------------------------------- options / tasks
@dataclass
class ReportOptions:
    interval: str = "day"
    """`day` or `sync`."""
    columns: dict[str, list[str]] = field(default_factory=dict)
    """Per stream name: the columns to request (default: the table's default columns)."""
    timezone: str | None = None
    """IANA time zone for day boundaries and `parameters[timezone]` (None: UTC)."""
    versions: dict[str, str] = field(default_factory=dict)
    """Per stream name: pin a version (`"3"` or `"payouts.itemized.3"`)."""
    poll_timeout: float = 600.0
    files_url: str = "https://files.stripe.com"
    poll_interval: float = 1.0
    """First wait between polls; grows ×1.5 up to `poll_max_interval`."""
    poll_max_interval: float = 30.0


@dataclass
class ReportTask:
    spec: ReportSpec
    account: str | None
    report_type: str
    parameters: dict
    """interval_start/interval_end (unix), payout, timezone, columns (list)."""
    bookmark_after: int
    """The stream's bookmark once this task's rows are emitted."""
    schema_columns: tuple[str, ...] = ()
    """The stream schema's report columns (null in the record when the run did not return them)."""
    pending_after: tuple[str, ...] | None = None
    """Single-payout reports: the stream's `report_pending` payout ids once this task's rows are
    emitted (None: other reports, which keep no such list)."""

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.account, self.report_type, self.parameters)

    def describe(self) -> str:
        p = self.parameters
        if "payout" in p:
            what = f"payout {p['payout']}"
        elif "interval_start" in p:
            what = f"{rfc3339(p['interval_start'])}..{rfc3339(p['interval_end'])}"
        else:
            what = f"at {rfc3339(p['interval_end'])}"
        account = f", account {self.account}" if self.account else ""
        return f"stream {self.spec.name} ({self.report_type}, {what}{account})"


class ReportFailed(StripeError):
    """A report run failed, or was still pending at the poll limit. `str()` is one line."""


def idempotency_key(account: str | None, report_type: str, parameters: dict) -> str:
    blob = json.dumps({"account": account or "", "report_type": report_type, "parameters": parameters},
                      sort_keys=True, separators=(",", ":"))
    return "tap-stripe-report-" + hashlib.sha256(blob.encode()).hexdigest()[:40]


def form_data(report_type: str, parameters: dict) -> list[tuple[str, str]]:
    """The form body of `POST /v1/reporting/report_runs`."""
    data = [("report_type", report_type)]
    for key in ("interval_start", "interval_end", "payout", "timezone"):
        if parameters.get(key) is not None:
            data.append((f"parameters[{key}]", str(parameters[key])))
    for column in parameters.get("columns") or ():
        data.append(("parameters[columns][]", column))
    return data


# --------------------------------------------------------------------------- report types
_TYPES_TTL = 300.0
_types_lock = threading.Lock()
_types_cache: weakref.WeakKeyDictionary[StripeClient, dict[str | None, tuple[float, list[dict]]]] = \
    weakref.WeakKeyDictionary()


def report_types(client: StripeClient, account: str | None, stream: str = "") -> list[dict]:
    """`GET /v1/reporting/report_types` (not paginated), cached per client and account for 5 min."""
    with _types_lock:
        cached = _types_cache.get(client, {}).get(account)
        if cached and time.monotonic() - cached[0] < _TYPES_TTL:
            return cached[1]
    try:
        body = client.request("GET", "/v1/reporting/report_types", account=account, stream=stream)
    except StripeError as exc:
        hint = ""
        if client.credentials.api_key.startswith(("sk_test_", "rk_test_")):
            hint = " (Stripe serves report types to live-mode keys only)"
        raise ReportFailed(f"{exc}{hint}", status=exc.status, path=exc.path, error=exc.error,
                           request_id=exc.request_id) from None
    types = list(body.get("data") or [])
    with _types_lock:
        _types_cache.setdefault(client, {})[account] = (time.monotonic(), types)
    return types


def _split_type(type_id: str) -> tuple[str, int | None]:
    family, _, version = type_id.rpartition(".")
    return (family, int(version)) if version.isdigit() else (type_id, None)


def choose_report_type(spec: ReportSpec, types: list[dict], pinned: str | None) -> dict | None:
    """The newest offered version of the family, or the pinned one (error if not offered)."""
    offered = {}
    for t in types:
        family, version = _split_type(t.get("id") or "")
        if family == spec.family and version is not None:
            offered[version] = t
    if pinned:
        pinned = str(pinned)
        type_id = pinned if "." in pinned else f"{spec.family}.{pinned}"
        family, version = _split_type(type_id)
        if family != spec.family or version is None:
            raise ReportFailed(f"stream {spec.name}: report_versions pins {pinned!r}, which is not a version "
                               f"of {spec.family}")
        if version not in offered:
            raise ReportFailed(f"stream {spec.name}: pinned report type {type_id} is not offered to this account "
                               f"(offered: {', '.join(f'{spec.family}.{v}' for v in sorted(offered)) or 'none'})")
        return offered[version]
    return offered[max(offered)] if offered else None


def _supports_timezone(spec: ReportSpec, report_type: str) -> bool:
    _, version = _split_type(report_type)
    return spec.timezone_from is not None and version is not None and version >= spec.timezone_from


def requested_columns(spec: ReportSpec, report_type: dict, options: ReportOptions) -> list[str]:
    configured = options.columns.get(spec.name)
    if configured:
        return list(configured)
    defaults = report_type.get("default_columns")
    if not defaults:
        return spec.column_names
    offered = set(defaults)
    return [c for c in spec.column_names if c in offered]


# --------------------------------------------------------------------------- planning
def _tz(options: ReportOptions):
    if not options.timezone:
        return dt_timezone.utc
    try:
        return ZoneInfo(options.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportFailed(f"report_timezone {options.timezone!r} is not an IANA time zone") from None


def next_day_boundary(ts: int, tz) -> int:
    """The first local midnight strictly after `ts`."""
    local = datetime.fromtimestamp(ts, tz).date() + timedelta(days=1)
    return int(datetime(local.year, local.month, local.day, tzinfo=tz).timestamp())


def day_boundaries(start: int, end: int, tz) -> list[int]:
    """Local midnights b with start < b <= end."""
    out = []
    b = next_day_boundary(start, tz)
    while b <= end:
        out.append(b)
        b = next_day_boundary(b, tz)
    return out


def plan_report(client: StripeClient, spec: ReportSpec, account: str | None, bookmark: int | None,
                start: int | None, options: ReportOptions, pending: list[str] | None = None) -> list[ReportTask]:
    """The runs that cover what is new since `bookmark`, in order; [] when nothing is.

    `pending`: single-payout reports only, the state's `report_pending` (payout ids remembered
    as still in transit past their arrival date)."""
    types = report_types(client, account, spec.name)
    chosen = choose_report_type(spec, types, options.versions.get(spec.name))
    if chosen is None:
        LOGGER.warning("stream %s: the account offers no %s report type; nothing to read.", spec.name, spec.family)
        return []
    type_id = chosen["id"]
    available_start = int(chosen.get("data_available_start") or 0)
    available_end = int(chosen.get("data_available_end") or 0)
    base: dict[str, Any] = {}
    if options.timezone and _supports_timezone(spec, type_id):
        _tz(options)
        base["timezone"] = options.timezone
    base["columns"] = requested_columns(spec, chosen, options)

    schema_columns = tuple(options.columns.get(spec.name) or spec.column_names)

    def task(params: dict, after: int, pending_after: tuple[str, ...] | None = None) -> ReportTask:
        return ReportTask(spec, account, type_id, {**params, **base}, after, schema_columns, pending_after)

    if spec.params == "payout":
        return _plan_payouts(client, spec, account, bookmark, start, available_start, available_end, task, pending)

    lower = max(bookmark if bookmark is not None else (start or 0), available_start)
    if lower >= available_end:
        return []
    if options.interval not in ("day", "sync"):
        raise ReportFailed(f"report_interval must be 'day' or 'sync', not {options.interval!r}")
    if options.interval == "sync":
        ends = [available_end]
    else:
        ends = day_boundaries(lower, available_end, _tz(options))
    tasks = []
    previous = lower
    for end in ends:
        if spec.params == "interval":
            tasks.append(task({"interval_start": previous, "interval_end": end}, end))
        else:
            tasks.append(task({"interval_end": end}, end))
        previous = end
    return tasks


MAX_PENDING_PAYOUTS = 50
"""How many payouts still in transit a week after their arrival date a stream remembers
(state `report_pending`); past that the plan waits at the next one instead."""
STUCK_AFTER = 7 * DAY
"""A payout still pending/in transit this long after its arrival date no longer holds the plan."""


def _pending_ids(spec: ReportSpec, pending: Any) -> list[str]:
    if pending is None:
        return []
    if not isinstance(pending, list) or not all(isinstance(p, str) and p for p in pending):
        raise ReportFailed(f"stream {spec.name}: state 'report_pending' must be a list of payout ids")
    return list(dict.fromkeys(pending))


def _get_payout(client: StripeClient, spec: ReportSpec, account: str | None, payout_id: str) -> dict | None:
    """`GET /v1/payouts/{id}`; None when Stripe has no such payout."""
    try:
        return client.request("GET", f"/v1/payouts/{quote(payout_id, safe='')}", account=account,
                              endpoint="/v1/payouts/{id}", stream=spec.name)
    except StripeError as exc:
        if exc.status == 404 and (exc.error or {}).get("code") == "resource_missing":
            return None
        raise


def _created(payout: dict) -> int:
    return int(payout.get("created") or 0)


def _plan_payouts(client, spec, account, bookmark, start, available_start, available_end, task, pending):
    after = bookmark + 1 if bookmark is not None else max(start or available_start, available_start)
    remembered = _pending_ids(spec, pending)

    # Payouts remembered as pending: read the paid ones first, forget the ones that never will be.
    now_paid, still = [], []
    for payout_id in remembered:
        payout = _get_payout(client, spec, account, payout_id)
        status = payout.get("status") if payout is not None else "missing"
        if status in ("pending", "in_transit"):
            still.append(payout_id)
        elif status == "paid" and payout.get("automatic") is not False:
            now_paid.append(payout)
        else:
            LOGGER.warning("stream %s: payout %s, remembered as pending, is %s; forgetting it.",
                           spec.name, payout_id, status)
    now_paid.sort(key=lambda p: (_created(p), p.get("id") or ""))

    payouts = [payout for page in list_pages(client, "/v1/payouts", created_params(after, None), account=account,
                                             endpoint="/v1/payouts", stream=spec.name)
               for payout in page.get("data") or []]
    payouts.sort(key=lambda p: (_created(p), p.get("id") or ""))
    known = set(remembered)
    chosen = []
    stop = None  # the payout the plan stopped at: not done, nor anything after it
    for payout in payouts:
        if payout.get("id") in known:
            continue  # remembered as pending: handled above
        created = _created(payout)
        status = payout.get("status")
        if created >= available_end:
            stop = payout
            break  # the report data does not reach this payout yet
        if status in ("pending", "in_transit"):
            arrival = int(payout.get("arrival_date") or created)
            if arrival > available_end - STUCK_AFTER:
                stop = payout
                break  # it will be paid: wait for it rather than skip past it
            if len(still) >= MAX_PENDING_PAYOUTS:
                LOGGER.warning("stream %s: payout %s is still %s a week after its arrival date, and %d such payouts "
                               "are remembered already; waiting for them before reading later payouts.",
                               spec.name, payout.get("id"), status, len(still))
                stop = payout
                break
            LOGGER.warning("stream %s: payout %s is still %s a week after its arrival date; remembering it and "
                           "reading its report once it is paid.", spec.name, payout.get("id"), status)
            still.append(payout["id"])
            continue
        if status != "paid" or payout.get("automatic") is False:
            continue
        chosen.append(payout)

    remembered_after = tuple(still)
    tasks = []
    for i, payout in enumerate(now_paid):  # older than the bookmark: it stays where it is
        tasks.append(task({"payout": payout["id"]}, after - 1,
                          remembered_after + tuple(p["id"] for p in now_paid[i + 1:])))
    for i, payout in enumerate(chosen):
        created = _created(payout)
        following = chosen[i + 1] if i + 1 < len(chosen) else stop
        # Never past a second that still holds a payout not yet done: a sibling read by a later
        # task, or the payout the plan stopped at (a crash, or the next run, reads it again).
        done_through = created - 1 if following is not None and _created(following) == created else created
        tasks.append(task({"payout": payout["id"]}, done_through, remembered_after))
    return tasks


# --------------------------------------------------------------------------- running
def _server_time(client: StripeClient) -> float | None:
    value = client.last_response_date
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


STALE_FAILURE_SECONDS = 60
MAX_KEY_CHAIN = 3


def run_report(client: StripeClient, task: ReportTask, options: ReportOptions) -> list[dict]:
    """Create (idempotently), poll, download and parse one report run; return its records."""
    base_key = task.idempotency_key
    key = base_key
    run: dict = {}
    for attempt in range(MAX_KEY_CHAIN):
        run = client.request("POST", "/v1/reporting/report_runs", data=form_data(task.report_type, task.parameters),
                             headers={"Idempotency-Key": key}, account=task.account,
                             endpoint="/v1/reporting/report_runs", stream=task.spec.name)
        posted_at = _server_time(client)
        run = _poll(client, task, run, options)
        if run.get("status") == "succeeded":
            break
        created = run.get("created")
        stale = posted_at is not None and isinstance(created, int) and created < posted_at - STALE_FAILURE_SECONDS
        if stale and attempt + 1 < MAX_KEY_CHAIN:
            LOGGER.info("%s: run %s failed earlier (%s); running the report again.", task.describe(), run.get("id"),
                        _error_text(run))
            key = "tap-stripe-report-" + hashlib.sha256(f"{base_key}/{run.get('id')}".encode()).hexdigest()[:40]
            continue
        raise ReportFailed(f"{task.describe()}: report run {run.get('id')} failed: {_error_text(run)}; "
                           "the next sync retries this interval", path="/v1/reporting/report_runs")
    result = run.get("result") or {}
    url = result.get("url") if isinstance(result, dict) else None
    if not url:
        raise ReportFailed(f"{task.describe()}: report run {run.get('id')} succeeded without a result file URL")
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = client.request("GET", path, base_url=options.files_url, account=task.account, raw=True,
                          endpoint="/v1/files/{file}/contents", stream=task.spec.name)
    updated = run.get("succeeded_at") or run.get("created")
    return parse_report_csv(task, body, run.get("id"), updated if isinstance(updated, int) else None)


def _error_text(run: dict) -> str:
    error = run.get("error")
    return " ".join(str(error).split()) if error else "no reason given"


def _poll(client: StripeClient, task: ReportTask, run: dict, options: ReportOptions) -> dict:
    deadline = time.monotonic() + options.poll_timeout
    wait = options.poll_interval
    while run.get("status") == "pending":
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReportFailed(
                f"{task.describe()}: report run {run.get('id')} still pending after {options.poll_timeout:g}s "
                "(report_poll_timeout_seconds); the next sync picks up the same run", path="/v1/reporting/report_runs")
        time.sleep(min(wait, remaining))
        wait = min(options.poll_max_interval, wait * 1.5)
        run = client.request("GET", f"/v1/reporting/report_runs/{run['id']}", account=task.account,
                             endpoint="/v1/reporting/report_runs/{id}", stream=task.spec.name)
    if run.get("status") not in ("succeeded", "failed"):
        raise ReportFailed(f"{task.describe()}: report run {run.get('id')} has unexpected status {run.get('status')!r}")
    return run


# --------------------------------------------------------------------------- parsing
def _parse_time(value: str, tz) -> str:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        if text.isdigit():
            return rfc3339(int(text))
        raise
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _convert(column: str, kind: str, value: str, tz) -> Any:
    if value == "":
        return None
    if kind == "decimal":
        amount = Decimal(value.strip())
        if not amount.is_finite():
            raise ValueError(value)
        return amount
    if kind == "integer":
        return int(value.strip())
    if kind == "datetime":
        return _parse_time(value, dt_timezone.utc if column.endswith("_utc") else tz)
    return value


def _cell(values: list[str], at: int | None) -> str | None:
    return values[at] if at is not None and at < len(values) else None


def _row_scope(task: ReportTask) -> str:
    """What a report run covers, as the `_row_id` prefix: a payout or an interval."""
    p = task.parameters
    if task.spec.params == "payout":
        return p["payout"]
    if task.spec.params == "interval_end":
        return rfc3339(p["interval_end"])
    return f"{rfc3339(p['interval_start'])}/{rfc3339(p['interval_end'])}"


def _row_id(task: ReportTask, scope: str, txn: str | None, category: str | None, currency: str | None,
            number: int) -> str:
    spec = task.spec
    if spec.itemized and txn:
        return txn if spec.params == "interval" else f"{scope}/{txn}"
    if not spec.itemized and category and currency:
        return f"{scope}/{currency}/{category}"
    return f"{task.report_type}/{scope}/{number}"


def parse_report_csv(task: ReportTask, body: bytes, run_id: str | None, updated: int | None) -> list[dict]:
    text = body.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return []
    tz: tzinfo = dt_timezone.utc
    if task.parameters.get("timezone"):
        tz = ZoneInfo(task.parameters["timezone"])
    kinds = [column_kind(c) for c in header]
    schema_columns = task.schema_columns or task.parameters.get("columns") or header
    base = {c: None for c in schema_columns}
    p = task.parameters
    extra: dict[str, Any] = {"_report_type": task.report_type, "_report_run": run_id}
    if task.spec.params == "interval":
        extra["_interval_start"] = rfc3339(p["interval_start"])
    if task.spec.params in ("interval", "interval_end"):
        extra["_interval_end"] = rfc3339(p["interval_end"])
    if task.spec.params == "payout":
        extra["_payout"] = p["payout"]
    extra["_account_id"] = task.account
    extra["_updated_at"] = rfc3339(updated) if updated is not None else None
    # Per column, once: where it is in a row and its kind; a column the run did not ask for
    # is not in the schema. The key's columns are read from the raw row.
    kept = [(index, column, kind) for index, (column, kind) in enumerate(zip(header, kinds)) if column in base]
    position = {column: index for index, column in enumerate(header)}
    txn_at, currency_at = position.get("balance_transaction_id"), position.get("currency")
    category_at, old_category_at = position.get("reporting_category"), position.get("category")
    scope = _row_scope(task)
    records = []
    for number, values in enumerate(reader, start=1):
        if not values:
            continue
        record = dict(base)
        for index, column, kind in kept:
            if index >= len(values):
                break  # a short row: the rest stay null
            value = values[index]
            try:
                record[column] = _convert(column, kind, value, tz)
            except (ValueError, InvalidOperation):
                raise ReportFailed(f"{task.describe()}: row {number} column {column}: cannot read {value!r} "
                                   f"as {kind}") from None
        category = _cell(values, category_at) or _cell(values, old_category_at)
        record["_row_id"] = _row_id(task, scope, _cell(values, txn_at), category, _cell(values, currency_at), number)
        record.update(extra)
        records.append(record)
    return records
