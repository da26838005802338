"""Single-payout reports' planning (`_plan_payouts`, `_choose_payouts`, `_recheck_remembered`),
in-process against a fake `/v1/payouts`: which payouts are read, where the plan stops, which
payouts still in transit are remembered (`report_pending`), and the bookmark after each run."""

from __future__ import annotations

import logging

import pytest
from test_report_intervals import BY_ID, DAY, T0, Payouts, payout, rtype

from tap_stripe.api.client import StripeError
from tap_stripe.errors import ReportFailed
from tap_stripe.reports.plan import MAX_PENDING_PAYOUTS, STUCK_AFTER, _created, _pending_ids, plan_report
from tap_stripe.reports.task import ReportOptions

END = T0 + 30 * DAY  # data_available_end


class Recorded(Payouts):
    def __init__(self, payouts, error=None):
        super().__init__([rtype(BY_ID, 4, T0 - 90 * DAY, END)], payouts)
        self.error = error
        self.gets = []

    def request(self, method, path, *, account=None, stream="", **kw):
        if path.startswith("/v1/payouts/"):
            self.gets.append((method, path, account, kw.get("endpoint"), stream))
            if self.error is not None:
                raise self.error
        return super().request(method, path, account=account, stream=stream, **kw)

    def get(self, path, params, *, account=None, endpoint=None, stream=None):
        assert (endpoint, stream) == ("/v1/payouts", BY_ID.name)
        return super().get(path, params, account=account, endpoint=endpoint, stream=stream)


def plan(payouts, bookmark=T0, pending=None, start=None, client=None):
    client = client or Recorded(payouts)
    return plan_report(client, BY_ID, "acct_1", bookmark, start, ReportOptions(), pending)


def read(tasks):
    return [(t.parameters["payout"], t.bookmark_after, t.pending_after) for t in tasks]


def test_payouts_are_read_oldest_first_until_one_the_data_does_not_reach():
    payouts = [payout(3, T0 + 30), payout(1, T0 + 10), payout(2, T0 + 10), payout(4, END), payout(5, END + 10)]
    assert read(plan(payouts)) == [("po_1", T0 + 9, ()), ("po_2", T0 + 10, ()), ("po_3", T0 + 30, ())]
    assert read(plan([payout(4, END - 1)])) == [("po_4", END - 1, ())]


def test_a_payout_the_plan_stops_at_holds_back_the_bookmark_of_its_second():
    payouts = [payout(1, T0 + 10), {**payout(2, T0 + 10, "in_transit"), "arrival_date": END}]
    assert read(plan(payouts)) == [("po_1", T0 + 9, ())]
    payouts = [payout(1, T0 + 10), {**payout(2, T0 + 11, "in_transit"), "arrival_date": END}]
    assert read(plan(payouts)) == [("po_1", T0 + 10, ())]


def test_failed_canceled_and_manual_payouts_are_passed_over():
    failed, manual = payout(1, T0 + 10, "failed"), {**payout(2, T0 + 20), "automatic": False}
    payouts = [failed, manual, payout(3, T0 + 30), {**payout(4, T0 + 40), "automatic": None}]
    assert read(plan(payouts)) == [("po_3", T0 + 30, ()), ("po_4", T0 + 40, ())]


def test_a_payout_in_transit_a_week_past_its_arrival_is_remembered_not_waited_for(caplog):
    stuck = END - STUCK_AFTER
    payouts = [{**payout(1, T0 + 10, "in_transit"), "arrival_date": stuck}, payout(2, T0 + 20),
               {**payout(3, T0 + 30, "pending"), "arrival_date": None, "created": T0 + 30}, payout(4, T0 + 40)]
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        tasks = plan(payouts)
    # po_3, pending with no arrival date: its creation counts, more than a week before the end
    assert read(tasks) == [("po_2", T0 + 20, ("po_1", "po_3")), ("po_4", T0 + 40, ("po_1", "po_3"))]
    assert caplog.messages == [f"stream {BY_ID.name}: payout {p} is still {s} a week after its arrival date; "
                               "remembering it and reading its report once it is paid."
                               for p, s in (("po_1", "in_transit"), ("po_3", "pending"))]


def test_a_payout_due_within_the_week_is_waited_for():
    payouts = [{**payout(1, T0 + 10, "pending"), "arrival_date": END - STUCK_AFTER + 1}, payout(2, T0 + 20)]
    assert read(plan(payouts)) == []
    payouts = [{**payout(1, T0 + 10, "in_transit"), "arrival_date": END - STUCK_AFTER + 1}, payout(2, T0 + 20)]
    assert read(plan(payouts)) == []


def test_at_most_fifty_stuck_payouts_are_remembered(caplog):
    old = T0 - 80 * DAY
    remembered = [f"po_r{i}" for i in range(MAX_PENDING_PAYOUTS)]
    client = Recorded([*[{**payout(f"r{i}", old, "in_transit")} for i in range(MAX_PENDING_PAYOUTS)],
                       {**payout("x", T0 + 10, "in_transit"), "arrival_date": old}, payout("y", T0 + 20)])
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        tasks = plan(None, pending=remembered, client=client)
    assert tasks == []
    assert caplog.messages == [f"stream {BY_ID.name}: payout po_x is still in_transit a week after its arrival date, "
                               f"and {MAX_PENDING_PAYOUTS} such payouts are remembered already; waiting for them "
                               "before reading later payouts."]
    client = Recorded([*[{**payout(f"r{i}", old, "in_transit")} for i in range(MAX_PENDING_PAYOUTS - 1)],
                       {**payout("x", T0 + 10, "in_transit"), "arrival_date": old}, payout("y", T0 + 20)])
    tasks = plan(None, pending=remembered[:-1], client=client)
    assert read(tasks) == [("po_y", T0 + 20, (*remembered[:-1], "po_x"))]


def test_remembered_payouts_now_paid_are_read_first_without_moving_the_bookmark(caplog):
    payouts = [payout(2, T0 - 5 * DAY), payout(1, T0 - 5 * DAY), payout(3, T0 - 9 * DAY),
               payout(4, T0 - 9 * DAY, "in_transit"), {**payout(5, T0 - 9 * DAY), "automatic": False},
               payout(6, T0 - 9 * DAY, "canceled"), payout(8, T0 - 9 * DAY, "pending"), payout(10, T0 + 10)]
    client = Recorded(payouts)
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        tasks = plan(None, pending=["po_2", "po_1", "po_4", "po_5", "po_6", "po_7", "po_3", "po_8", "po_2"],
                     client=client)
    assert read(tasks) == [("po_3", T0, ("po_4", "po_8", "po_1", "po_2")), ("po_1", T0, ("po_4", "po_8", "po_2")),
                           ("po_2", T0, ("po_4", "po_8")), ("po_10", T0 + 10, ("po_4", "po_8"))]
    assert caplog.messages == [
        f"stream {BY_ID.name}: payout po_5, remembered as pending, is paid; forgetting it.",
        f"stream {BY_ID.name}: payout po_6, remembered as pending, is canceled; forgetting it.",
        f"stream {BY_ID.name}: payout po_7, remembered as pending, is missing; forgetting it."]
    assert client.gets[0] == ("GET", "/v1/payouts/po_2", "acct_1", "/v1/payouts/{id}", BY_ID.name)
    assert len(client.gets) == 8  # each once


def test_a_payout_id_is_quoted_and_other_errors_stop_the_plan():
    client = Recorded([payout("a/b", T0 - DAY)])
    client.payouts[0]["id"] = "po_a/b"
    plan(None, pending=["po_a/b"], client=client)
    assert client.gets[0][1] == "/v1/payouts/po_a%2Fb"
    for error in (StripeError("gone", status=404), StripeError("gone", status=404, error={"code": "other"}),
                  StripeError("down", status=500, error={"code": "resource_missing"})):
        with pytest.raises(StripeError):
            plan([], pending=["po_1"], client=Recorded([], error=error))


def test_the_first_plan_starts_at_start_date_or_where_the_data_starts():
    payouts = [payout(1, T0 - 100 * DAY), payout(2, T0 - 10 * DAY), payout(3, T0 + 10)]
    assert [t[0] for t in read(plan(payouts, bookmark=None))] == ["po_2", "po_3"]  # available from T0 - 90 days
    assert [t[0] for t in read(plan(payouts, bookmark=None, start=T0))] == ["po_3"]
    assert [t[0] for t in read(plan(payouts, bookmark=None, start=T0 - 95 * DAY))] == ["po_2", "po_3"]


def test_report_pending_must_be_a_list_of_payout_ids():
    assert _pending_ids(BY_ID, None) == []
    assert _pending_ids(BY_ID, ["po_2", "po_1", "po_2"]) == ["po_2", "po_1"]
    for bad in ("po_1", ["po_1", ""], ["po_1", 5], {"po_1": 1}):
        with pytest.raises(ReportFailed) as raised:
            _pending_ids(BY_ID, bad)
        assert str(raised.value) == f"stream {BY_ID.name}: state 'report_pending' must be a list of payout ids"


def test_a_payout_without_a_created_time_counts_as_created_at_zero():
    assert _created({}) == 0 and _created({"created": None}) == 0 and _created({"created": 5}) == 5


def test_a_remembered_payout_listed_again_is_read_once():
    payouts = [payout(11, T0 + 5), payout(12, T0 + 20)]
    assert read(plan(payouts, pending=["po_11"])) == [("po_11", T0, ()), ("po_12", T0 + 20, ())]


def test_payouts_of_one_second_are_read_in_id_order_and_the_last_but_one_waits_for_the_last():
    payouts = [payout(1, T0 + 5), payout("b", T0 + 10), payout("a", T0 + 10)]
    assert read(plan(payouts)) == [("po_1", T0 + 5, ()), ("po_a", T0 + 9, ()), ("po_b", T0 + 10, ())]
    client = Recorded(payouts)
    client.payouts = [payout(9, T0 - 5 * DAY), payout(8, T0 - 5 * DAY)]
    client.payouts[0]["id"], client.payouts[1]["id"] = "po_b", "po_a"
    assert [t[0] for t in read(plan(None, pending=["po_b", "po_a"], client=client))] == ["po_a", "po_b"]


def test_a_stuck_payout_the_plan_stops_at_holds_back_the_bookmark_of_its_second():
    old = T0 - 80 * DAY
    remembered = [f"po_r{i}" for i in range(MAX_PENDING_PAYOUTS)]
    client = Recorded([*[payout(f"r{i}", old, "in_transit") for i in range(MAX_PENDING_PAYOUTS)],
                       payout("a", T0 + 10), {**payout("x", T0 + 10, "in_transit"), "arrival_date": old}])
    assert read(plan(None, pending=remembered, client=client)) == [("po_a", T0 + 9, tuple(remembered))]


def test_a_malformed_report_pending_stops_the_plan():
    with pytest.raises(ReportFailed, match="must be a list of payout ids"):
        plan([payout(1, T0 + 5)], pending="po_1")
