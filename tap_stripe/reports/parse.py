"""A report run's CSV result as records: each cell typed by its column's kind, local times
converted to UTC, and each row given its `_row_id` (`parse_report_csv`)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, tzinfo
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from tap_stripe.errors import ReportFailed
from tap_stripe.output.records import rfc3339
from tap_stripe.reports.columns import column_kind
from tap_stripe.reports.task import ReportTask


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
