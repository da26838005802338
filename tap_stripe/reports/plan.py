"""What to run since the bookmark: the report type and version the account offers, the
intervals (days of `report_timezone`, or one up to `data_available_end`), and the payouts of
single-payout reports (`plan_report`)."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tap_stripe.api.client import StripeClient
from tap_stripe.api.pagination import list_pages
from tap_stripe.engine.windows import created_params
from tap_stripe.errors import ReportFailed, StripeError
from tap_stripe.reports.columns import ReportSpec
from tap_stripe.reports.task import ReportOptions, ReportTask

LOGGER = logging.getLogger("tap_stripe")

DAY = 86400

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
    now_paid, still = _recheck_remembered(client, spec, account, remembered)
    payouts = [payout for page in list_pages(client, "/v1/payouts", created_params(after, None), account=account,
                                             endpoint="/v1/payouts", stream=spec.name)
               for payout in page.get("data") or []]
    payouts.sort(key=lambda p: (_created(p), p.get("id") or ""))
    chosen, stop = _choose_payouts(spec, payouts, set(remembered), still, available_end)

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


def _recheck_remembered(client: StripeClient, spec: ReportSpec, account: str | None,
                        remembered: list[str]) -> tuple[list[dict], list[str]]:
    """Payouts remembered as pending: (the paid ones, oldest first, to read; the ids of those
    still pending). The ones that never will be paid are forgotten."""
    now_paid: list[dict] = []
    still: list[str] = []
    for payout_id in remembered:
        payout = _get_payout(client, spec, account, payout_id)
        status = payout.get("status") if payout is not None else "missing"
        if status in ("pending", "in_transit"):
            still.append(payout_id)
        elif payout is not None and status == "paid" and payout.get("automatic") is not False:
            now_paid.append(payout)
        else:
            LOGGER.warning("stream %s: payout %s, remembered as pending, is %s; forgetting it.",
                           spec.name, payout_id, status)
    now_paid.sort(key=lambda p: (_created(p), p.get("id") or ""))
    return now_paid, still


def _choose_payouts(spec: ReportSpec, payouts: list[dict], known: set[str], still: list[str],
                    available_end: int) -> tuple[list[dict], dict | None]:
    """(The paid automatic payouts to read, oldest first; the payout the plan stopped at: not
    done, nor anything after it, or None). A payout stuck in transit is added to `still`."""
    chosen: list[dict] = []
    stop = None
    for payout in payouts:
        if payout.get("id") in known:
            continue  # remembered as pending: handled by _recheck_remembered
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
    return chosen, stop
