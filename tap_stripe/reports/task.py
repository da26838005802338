"""A report run to make (`ReportTask`), the settings that shape it (`ReportOptions`), and how
one fails (`ReportFailed`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from tap_stripe.output.records import rfc3339
from tap_stripe.reports.columns import ReportSpec


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
