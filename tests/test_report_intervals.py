"""Report intervals: local day boundaries and the runs `plan_report` asks for since a bookmark.
In-process against a fake report-types endpoint, so mutation testing sees them
(docs/mutation.md). The reports themselves are in test_reports.py."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from tap_stripe.errors import ReportFailed, StripeError
from tap_stripe.reports.columns import REPORTS_BY_NAME
from tap_stripe.reports.plan import day_boundaries, next_day_boundary, plan_report
from tap_stripe.reports.task import ReportOptions

DAY = 86400
UTC = timezone.utc
NEW_YORK = ZoneInfo("America/New_York")
ACTIVITY = REPORTS_BY_NAME["report_balance_change_from_activity_itemized"]  # interval, timezone from v3
SUMMARY = REPORTS_BY_NAME["report_balance_summary"]  # interval, timezone from v1
ENDING = REPORTS_BY_NAME["report_ending_balance_reconciliation_summary"]  # interval_end only
BY_ID = REPORTS_BY_NAME["report_payout_reconciliation_by_id_itemized"]  # one run per payout
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def at(text: str, tz=UTC) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


class Types:
    """A client whose only endpoint is `GET /v1/reporting/report_types`."""

    def __init__(self, *types):
        self.types = list(types)
        self.calls = []

    def request(self, method, path, *, account=None, stream="", **_):
        self.calls.append((method, path, account, stream))
        assert (method, path) == ("GET", "/v1/reporting/report_types")
        return {"object": "list", "data": self.types}


def rtype(spec, version, start, end, columns=None):
    t = {"id": f"{spec.family}.{version}", "data_available_start": start, "data_available_end": end}
    if columns is not None:
        t["default_columns"] = columns
    return t


def intervals(tasks):
    return [(t.parameters.get("interval_start"), t.parameters["interval_end"], t.bookmark_after) for t in tasks]


# --------------------------------------------------------------------------- day boundaries
def test_next_day_boundary_is_the_next_midnight_strictly_after():
    assert next_day_boundary(T0, UTC) == T0 + DAY
    assert next_day_boundary(T0 - 1, UTC) == T0
    assert next_day_boundary(T0 + DAY - 1, UTC) == T0 + DAY
    assert next_day_boundary(T0 + 1, UTC) == T0 + DAY


def test_next_day_boundary_is_local_midnight():
    # 2026-01-01T03:00Z is 22:00 on Dec 31 in New York (UTC-5): the next midnight is 05:00Z on Jan 1
    assert next_day_boundary(at("2026-01-01T03:00:00"), NEW_YORK) == at("2026-01-01T05:00:00")
    assert next_day_boundary(at("2026-01-01T05:00:00"), NEW_YORK) == at("2026-01-02T05:00:00")


def test_local_days_around_daylight_saving_are_23_and_25_hours():
    spring = day_boundaries(at("2026-03-07T12:00:00"), at("2026-03-10T12:00:00"), NEW_YORK)
    assert spring == [at("2026-03-08T05:00:00"), at("2026-03-09T04:00:00"), at("2026-03-10T04:00:00")]
    autumn = day_boundaries(at("2026-10-31T12:00:00"), at("2026-11-02T12:00:00"), NEW_YORK)
    assert autumn == [at("2026-11-01T04:00:00"), at("2026-11-02T05:00:00")]


def test_day_boundaries_exclude_start_and_include_end():
    assert day_boundaries(T0, T0 + 3 * DAY, UTC) == [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
    assert day_boundaries(T0 - 1, T0 + DAY - 1, UTC) == [T0]
    assert day_boundaries(T0 + 1, T0 + DAY - 1, UTC) == []
    assert day_boundaries(T0, T0, UTC) == []
    assert day_boundaries(T0, T0 - DAY, UTC) == []


# --------------------------------------------------------------------------- plan_report: intervals
def test_days_from_the_bookmark_to_the_last_midnight_of_available_data():
    client = Types(rtype(SUMMARY, 1, T0 - 30 * DAY, T0 + 3 * DAY + 500))
    tasks = plan_report(client, SUMMARY, None, T0 + 100, None, ReportOptions())
    assert intervals(tasks) == [(T0 + 100, T0 + DAY, T0 + DAY), (T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY),
                                (T0 + 2 * DAY, T0 + 3 * DAY, T0 + 3 * DAY)]
    assert [t.report_type for t in tasks] == ["balance.summary.1"] * 3
    assert all(t.spec is SUMMARY and t.account is None for t in tasks)


def test_the_bookmark_wins_over_start_and_nothing_is_asked_before_data_is_available():
    client = Types(rtype(SUMMARY, 1, T0, T0 + 2 * DAY))
    assert intervals(plan_report(client, SUMMARY, None, T0 + DAY, T0, ReportOptions())) == [
        (T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY)]
    assert intervals(plan_report(client, SUMMARY, None, T0 - 5 * DAY, None, ReportOptions()))[0][0] == T0
    assert intervals(plan_report(client, SUMMARY, None, None, T0 - 5 * DAY, ReportOptions()))[0][0] == T0
    assert intervals(plan_report(client, SUMMARY, None, None, T0 + DAY, ReportOptions())) == [
        (T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY)]
    assert intervals(plan_report(client, SUMMARY, None, None, None, ReportOptions()))[0][0] == T0
    assert intervals(plan_report(client, SUMMARY, None, 0, T0 + DAY, ReportOptions()))[0][0] == T0


def test_a_bookmark_at_or_past_the_available_end_plans_nothing():
    client = Types(rtype(SUMMARY, 1, T0 - DAY, T0))
    assert plan_report(client, SUMMARY, None, T0, None, ReportOptions()) == []
    assert plan_report(client, SUMMARY, None, T0 + 1, None, ReportOptions()) == []
    assert intervals(plan_report(client, SUMMARY, None, T0 - 1, None, ReportOptions())) == [(T0 - 1, T0, T0)]


def test_less_than_a_day_available_plans_nothing_by_day():
    client = Types(rtype(SUMMARY, 1, T0 - DAY, T0 + DAY - 1))
    assert plan_report(client, SUMMARY, None, T0, None, ReportOptions()) == []


def test_sync_interval_is_one_run_to_the_available_end():
    client = Types(rtype(SUMMARY, 1, T0 - 30 * DAY, T0 + 3 * DAY + 500))
    tasks = plan_report(client, SUMMARY, None, T0 + 100, None, ReportOptions(interval="sync"))
    assert intervals(tasks) == [(T0 + 100, T0 + 3 * DAY + 500, T0 + 3 * DAY + 500)]


def test_snapshot_reports_ask_only_for_the_interval_end():
    client = Types(rtype(ENDING, 1, T0 - 30 * DAY, T0 + 2 * DAY))
    tasks = plan_report(client, ENDING, None, T0, None, ReportOptions())
    assert intervals(tasks) == [(None, T0 + DAY, T0 + DAY), (None, T0 + 2 * DAY, T0 + 2 * DAY)]
    assert all("interval_start" not in t.parameters for t in tasks)


def test_an_unknown_interval_is_refused():
    client = Types(rtype(SUMMARY, 1, T0 - DAY, T0 + DAY))
    with pytest.raises(ReportFailed, match=r"^report_interval must be 'day' or 'sync', not 'week'$"):
        plan_report(client, SUMMARY, None, T0, None, ReportOptions(interval="week"))
    assert plan_report(client, SUMMARY, None, T0 + DAY, None, ReportOptions(interval="week")) == []


def test_days_follow_the_configured_time_zone():
    start = at("2026-01-01T05:00:00")  # midnight in New York
    client = Types(rtype(SUMMARY, 1, start - 30 * DAY, start + 2 * DAY + 3600))
    tasks = plan_report(client, SUMMARY, None, start, None, ReportOptions(timezone="America/New_York"))
    assert intervals(tasks) == [(start, start + DAY, start + DAY), (start + DAY, start + 2 * DAY, start + 2 * DAY)]
    assert all(t.parameters["timezone"] == "America/New_York" for t in tasks)


def test_a_version_without_time_zones_is_not_sent_one_but_days_stay_local():
    start = at("2026-01-01T05:00:00")
    client = Types(rtype(ACTIVITY, 2, start - 30 * DAY, start + DAY))  # timezone only from version 3
    tasks = plan_report(client, ACTIVITY, None, start, None, ReportOptions(timezone="America/New_York"))
    assert intervals(tasks) == [(start, start + DAY, start + DAY)]
    assert "timezone" not in tasks[0].parameters


def test_an_unknown_time_zone_is_refused():
    client = Types(rtype(SUMMARY, 1, T0 - 30 * DAY, T0 + DAY))
    with pytest.raises(ReportFailed, match="report_timezone 'Mars/Olympus' is not an IANA time zone"):
        plan_report(client, SUMMARY, None, T0, None, ReportOptions(timezone="Mars/Olympus"))


# --------------------------------------------------------------------------- plan_report: the rest of a task
def test_the_newest_version_its_default_columns_and_the_account_are_used():
    client = Types(rtype(SUMMARY, 1, T0 - 30 * DAY, T0 + DAY, ["currency", "net", "not_in_our_table"]),
                   rtype(SUMMARY, 2, T0 - 30 * DAY, T0 + 2 * DAY, ["currency", "description"]),
                   rtype(ACTIVITY, 9, T0 - 30 * DAY, T0 + 5 * DAY))
    tasks = plan_report(client, SUMMARY, "acct_1", T0, None, ReportOptions())
    assert intervals(tasks) == [(T0, T0 + DAY, T0 + DAY), (T0 + DAY, T0 + 2 * DAY, T0 + 2 * DAY)]
    task = tasks[0]
    assert task.report_type == "balance.summary.2" and task.account == "acct_1"
    # the offered defaults, in the table's column order
    assert task.parameters == {"interval_start": T0, "interval_end": T0 + DAY, "columns": ["description", "currency"]}
    assert task.schema_columns == tuple(SUMMARY.column_names)
    assert task.pending_after is None
    assert client.calls == [("GET", "/v1/reporting/report_types", "acct_1", SUMMARY.name)]


def test_configured_columns_and_a_pinned_version():
    client = Types(rtype(SUMMARY, 1, T0 - 30 * DAY, T0 + DAY), rtype(SUMMARY, 2, T0 - 30 * DAY, T0 + 2 * DAY))
    opts = ReportOptions(columns={SUMMARY.name: ["net", "currency"]}, versions={SUMMARY.name: "1"})
    tasks = plan_report(client, SUMMARY, None, T0, None, opts)
    assert [t.report_type for t in tasks] == ["balance.summary.1"]
    assert tasks[0].parameters["columns"] == ["net", "currency"]
    assert tasks[0].schema_columns == ("net", "currency")


def test_no_offered_type_plans_nothing(caplog):
    client = Types(rtype(ACTIVITY, 3, T0 - DAY, T0 + DAY))
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        assert plan_report(client, SUMMARY, None, T0 - DAY, None, ReportOptions()) == []
    assert caplog.messages == [
        "stream report_balance_summary: the account offers no balance.summary report type; nothing to read."]


def test_missing_availability_means_nothing_is_available():
    client = Types({"id": "balance.summary.1"})
    assert plan_report(client, SUMMARY, None, None, None, ReportOptions()) == []
    assert plan_report(client, SUMMARY, None, None, None, ReportOptions(interval="sync")) == []
    client = Types({"id": "balance.summary.1", "data_available_start": None, "data_available_end": DAY})
    assert intervals(plan_report(client, SUMMARY, None, None, None, ReportOptions())) == [(0, DAY, DAY)]


# --------------------------------------------------------------------------- plan_report: single-payout reports
class Payouts(Types):
    """Report types, `GET /v1/payouts` (created filter, newest first) and `GET /v1/payouts/{id}`."""

    def __init__(self, types, payouts):
        super().__init__(*types)
        self.payouts = payouts
        self.lists = []
        self.fetched = []

    def request(self, method, path, *, account=None, stream="", **kw):
        if path.startswith("/v1/payouts/"):
            self.fetched.append((path, account))
            payout = next((p for p in self.payouts if p["id"] == path.rsplit("/", 1)[1]), None)
            if payout is None:
                raise StripeError("no such payout", status=404, error={"code": "resource_missing"})
            return payout
        return super().request(method, path, account=account, stream=stream, **kw)

    def get(self, path, params, *, account=None, endpoint=None, stream=None):
        assert path == "/v1/payouts"
        self.lists.append((account, list(params)))
        query = dict(params)
        rows = [p for p in self.payouts if p["created"] >= query.get("created[gte]", 0)]
        return {"data": sorted(rows, key=lambda p: -p["created"]), "has_more": False}


def payout(i, created, status="paid"):
    return {"id": f"po_{i}", "created": created, "status": status, "automatic": True, "arrival_date": created}


def test_single_payout_reports_plan_a_run_per_payout_since_the_bookmark():
    client = Payouts([rtype(BY_ID, 4, T0 - 90 * DAY, T0 + 30 * DAY)],
                     [payout(0, T0 - DAY), payout(1, T0 + 10), payout(2, T0 + 20), payout(9, T0 - 50 * DAY)])
    tasks = plan_report(client, BY_ID, "acct_1", T0, None, ReportOptions(), ["po_9"])
    assert [(t.parameters["payout"], t.bookmark_after, t.pending_after) for t in tasks] == [
        ("po_9", T0, ()), ("po_1", T0 + 10, ()), ("po_2", T0 + 20, ())]
    assert client.lists == [("acct_1", [("created[gte]", T0 + 1), ("limit", 100)])]
    assert client.fetched == [("/v1/payouts/po_9", "acct_1")]
    assert all(t.account == "acct_1" and t.report_type == "payout_reconciliation.by_id.itemized.4" for t in tasks)
    first = plan_report(client, BY_ID, None, None, T0 + 5, ReportOptions())
    assert [t.parameters["payout"] for t in first] == ["po_1", "po_2"]
    assert all("interval_end" not in t.parameters for t in first)
