"""Stripe financial reports (Reporting API v1) as streams: one stream per report family.

A report is not a list endpoint: the tap asks Stripe to *run* it for an interval
(`POST /v1/reporting/report_runs`), polls the run until it is `succeeded` or `failed`,
downloads the CSV that the run's `result` file points at and turns its rows into records.

Stripe's documentation of what is used here: the Reporting API
(https://docs.stripe.com/reports/api), report runs and report types
(https://docs.stripe.com/api/reporting/report_run, https://docs.stripe.com/api/reporting/report_type),
and the report types' columns (https://docs.stripe.com/reports/report-types).

The modules, by job (the names the engine uses are importable from this package):

- `columns`: `REPORT_STREAMS`, one `ReportSpec` per report family (Striim's report tables),
  and `report_schema(spec, columns)`, `report_key_properties(spec)`: discovery, offline. It
  imports nothing that talks to Stripe, so declaring the report streams loads no HTTP client.
- `task`: `ReportOptions` (the settings), `ReportTask` (one run to make); a failed run raises
  `tap_stripe.errors.ReportFailed`.
- `plan`: `plan_report(...)`, what to run since the bookmark (a list of `ReportTask`s).
- `run`: `run_report(...)`, run one task and return its records (raises `ReportFailed`).
- `parse`: the run's CSV result as records.

Design decisions (documented for the README):

- **Version**: the newest version of the family that `GET /v1/reporting/report_types` offers
  the account (cached per client and account for a few minutes); `report_versions` pins one.
- **Columns**: the schema is built from the reviewed column table (`columns`: default columns of
  the newest documented version; every column name of every documented version has a type
  in `COLUMN_KINDS`). A run requests `parameters[columns][]` explicitly: the configured
  `report_columns[stream]`, else the table's columns that the account's report type lists in
  its `default_columns` (so an older pinned version never gets a column it does not know,
  and a newer version's extra columns do not appear outside the schema). Schema columns a
  run did not request come out as null.
- **Types**: amounts (`gross`, `fee`, `net`, `net_amount`, `customer_facing_amount`) are
  `decimal.Decimal` in the record, schema `{"type": ["number", "null"]}`: exact, and a JSON
  number for targets (the writers serialise a Decimal as a JSON number: `writer.json_default`);
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
  gets the *same* run back on the next attempt (Stripe replays it for 24 h:
  https://docs.stripe.com/api/idempotent_requests). A run that failed and is replayed again
  later (created more than a minute before the request) is retried with a key derived from
  the failed run's id, so a failure does not stick for 24 h.
- **Live mode**: Stripe serves report types to live-mode keys only; the sandbox accepts
  test keys.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tap_stripe.reports.columns import (
    COLUMN_KINDS,
    REPORT_STREAMS,
    REPORTS_BY_NAME,
    ReportSpec,
    column_kind,
    column_schema,
    report_key_properties,
    report_replication_key,
    report_schema,
)

if TYPE_CHECKING:
    from tap_stripe.reports.plan import plan_report
    from tap_stripe.reports.run import run_report
    from tap_stripe.reports.task import ReportOptions, ReportTask

# The names of the modules that talk to Stripe, loaded when first used (PEP 562): importing
# this package for the columns (the stream classes do) does not import the HTTP client.
_RUNTIME = {
    "ReportOptions": "task", "ReportTask": "task",
    "plan_report": "plan", "run_report": "run",
}

__all__ = [
    "COLUMN_KINDS",
    "REPORTS_BY_NAME",
    "REPORT_STREAMS",
    "ReportOptions",
    "ReportSpec",
    "ReportTask",
    "column_kind",
    "column_schema",
    "plan_report",
    "report_key_properties",
    "report_replication_key",
    "report_schema",
    "run_report",
]


def __getattr__(name: str) -> Any:
    module = _RUNTIME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
