"""One report run over HTTP: created idempotently (`POST /v1/reporting/report_runs`), polled
until it succeeds or fails, and its result file downloaded and parsed (`run_report`)."""

from __future__ import annotations

import hashlib
import logging
import time
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from tap_stripe.api.client import StripeClient
from tap_stripe.errors import ReportFailed
from tap_stripe.reports.parse import parse_report_csv
from tap_stripe.reports.task import ReportOptions, ReportTask, form_data

LOGGER = logging.getLogger("tap_stripe")

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
