"""The engine's bookmark code, in-process: where a feed's windows and events start
(`Planner.plan_feed`, `plan_events`), what emitting a segment moves (`Emission.emit_segment`), what the
end of a feed sets (`Emission.finish`), and where a shared window is cut (`Scheduler.steal`). The end-to-end
behaviour is in test_engine.py and test_engine_loss.py; these pin the exact values, which
mutation testing showed those tests leave free (docs/mutation.md)."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from conftest import make_settings

from tap_stripe.engine.emission import Sinks
from tap_stripe.engine.feeds import Feed, Segment
from tap_stripe.engine.loop import Run
from tap_stripe.engine.plan import EVENTS_RETENTION, EVENTS_SAFETY_MARGIN, Scope
from tap_stripe.engine.scheduler import STEAL_MIN_LISTED, STEAL_MIN_OBJECTS, STEAL_MIN_READ
from tap_stripe.engine.state import State
from tap_stripe.output.records import rfc3339
from tap_stripe.output.summary import RunSummary
from tap_stripe.tap import SPECS

NOW = 1_767_225_600
HI = NOW - 5
DAY = 86400
VERSION = 1_700_000_000_000
GUARD = NOW - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN  # the oldest events bookmark read as events


class Executor:
    def __init__(self):
        self.submitted = []

    def submit(self, fn, *args):
        self.submitted.append((fn, args))
        return Future()


def make_run(state=None, selected=("charges",), specs=None, activate=True, **settings):
    base = dict(report_interval="day", report_columns={}, report_timezone=None, report_versions={},
                report_poll_timeout=60.0, files_url="http://files", max_workers=2, full_resync_streams=frozenset(),
                lookback=0, start=None, reread_days={}, on_permission_error="skip", updates_mode="refetch", expand={},
                full_resync_every=7 * DAY)
    base.update(settings)
    messages, lines, records, extracted_at = [], [], [], []
    def emitter(name):
        return lambda record, extracted, version: (records.append((name, record, version))
                                                   or extracted_at.append(extracted))

    emitters = {name: emitter(name) for name in SPECS}
    scope = Scope(specs=specs or SPECS, selected=set(selected), accounts=[None], platform_streams=(set(), True),
                  hi=HI, now=NOW, shapers={})
    sinks = Sinks(emitters=emitters, render={}, write_line=lines.append, write_message=messages.append,
                  activate_versions=activate)
    run = Run(client=None, scope=scope, sinks=sinks, state=State(state if state is not None else {}),
              settings=make_settings(**base), summary=RunSummary(0))
    run.scheduler.executor.shutdown()
    run.scheduler.executor = Executor()
    run.planner.new_version = lambda: VERSION
    run.out = SimpleNamespace(messages=messages, lines=lines, records=records, extracted=extracted_at)
    return run


def planned(run, name="charges", account=None):
    feed = Feed(run.planner.family(run.planner.scope.specs[name]), account, HI)
    run.planner.plan_feed(feed)
    return feed


def segs(feed):
    return [(s.kind, s.lo, s.hi) for s in feed.segments]


def cursors(run, name="charges", account="default"):
    return run.state.data["bookmarks"].get(name, {}).get("accounts", {}).get(account)


def bookmark(**cursors_):
    return {"bookmarks": {"charges": {"accounts": {"default": cursors_}}}}


# --------------------------------------------------------------------------- planning
def test_singletons_reports_and_full_tables_keep_no_cursor():
    run = make_run(selected=("balance", "report_balance_summary", "country_specs"))
    assert [s.kind for s in planned(run, "balance").segments] == ["singleton"]
    assert [s.kind for s in planned(run, "report_balance_summary").segments] == ["report_plan"]
    feed = planned(run, "country_specs")
    assert [s.kind for s in feed.segments] == ["pages"]
    assert (feed.version, feed.activate, feed.resync) == (VERSION, True, False)
    assert run.state.data["bookmarks"] == {}


def test_a_first_load_reads_the_list_and_saves_where_its_events_start():
    run = make_run()
    feed = planned(run)
    assert segs(feed) == [("window", 0, HI)]
    assert not feed.resync and not feed.activate
    assert feed.version == VERSION
    assert cursors(run) == {"events": HI, "version": VERSION}


def test_a_first_load_starts_at_start_date():
    run = make_run(start=NOW - 10 * DAY)
    assert segs(planned(run)) == [("window", NOW - 10 * DAY, HI)]


def test_an_incremental_run_starts_at_its_bookmarks_less_the_lookback():
    created, events = NOW - 2 * DAY, NOW - 3 * DAY
    run = make_run(bookmark(created=created, events=events, version=7), lookback=60)
    feed = planned(run)
    assert segs(feed) == [("window", created - 60, HI), ("events", events - 60, HI)]
    assert feed.segments[1].types == SPECS["charges"].event_types and feed.segments[1].advances
    assert feed.version == 7 and not feed.resync
    assert cursors(run) == {"created": created, "events": events, "version": 7}
    assert feed.listed_from == created - 60  # its update events add nothing the list does not read


def test_start_date_is_a_floor_under_the_created_bookmark():
    run = make_run(bookmark(created=NOW - 2 * DAY, events=NOW - DAY), start=NOW - DAY, lookback=DAY * 2)
    assert segs(planned(run))[0] == ("window", NOW - DAY, HI)


def test_reread_days_widen_the_lookback_of_that_stream_only():
    created = NOW - DAY
    run = make_run(bookmark(created=created, events=created), lookback=60, reread_days={"charges": 2})
    assert segs(planned(run)) == [("window", created - 2 * DAY, HI), ("events", created - 60, HI)]


def test_nothing_new_plans_no_window():
    run = make_run(bookmark(created=HI, events=HI))
    assert segs(planned(run)) == []
    run = make_run(bookmark(created=HI - 1, events=HI - 1))
    assert segs(planned(run)) == [("window", HI - 1, HI), ("events", HI - 1, HI)]


def test_created_bookmarks_without_events_read_events_from_the_oldest_created():
    run = make_run({"bookmarks": {"customers": {"accounts": {"default": {"created": NOW - 3 * DAY}}},
                                  "customer_tax_ids": {"accounts": {"default": {"created": NOW - 5 * DAY}}}}},
                   selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    assert segs(feed)[-1] == ("events", NOW - 5 * DAY, HI)
    assert cursors(run, "customers")["events"] == NOW - 5 * DAY
    assert "customer.tax_id.deleted" in feed.events_types  # a child's events re-read its parent


def test_unselected_members_created_bookmarks_do_not_count():
    run = make_run({"bookmarks": {"customers": {"accounts": {"default": {"created": NOW - 3 * DAY}}},
                                  "customer_tax_ids": {"accounts": {"default": {"created": NOW - 5 * DAY}}}}},
                   selected=("customers",))
    assert segs(planned(run, "customers"))[-1] == ("events", NOW - 3 * DAY, HI)


def test_an_events_bookmark_is_kept_until_30_days_less_a_day_then_the_list_is_re_read():
    run = make_run(bookmark(created=NOW - DAY, events=GUARD + 60), lookback=60)
    feed = planned(run)
    assert not feed.resync and segs(feed)[-1] == ("events", GUARD, HI)
    run = make_run(bookmark(created=NOW - DAY, events=GUARD + 59, version=7), lookback=60, start=NOW - 90 * DAY)
    feed = planned(run)
    assert feed.resync and feed.activate and feed.version == VERSION
    assert segs(feed)[0] == ("window", NOW - 90 * DAY, HI)
    assert cursors(run)["resync"] == {"version": VERSION, "created": NOW - 90 * DAY, "started": HI,
                                      "streams": ["charges"]}
    assert run.summary.stream("charges").notes == ["events bookmark older than 30 days: full re-read"]


def test_a_full_resync_reads_deletions_from_the_events_bookmark_without_moving_it():
    events = NOW - 2 * DAY
    run = make_run({"bookmarks": {"products": {"accounts": {"default": {"created": NOW - DAY, "events": events}}}}},
                   selected=("products",), full_resync_streams={"products"}, lookback=60)
    feed = planned(run, "products")
    assert feed.resync and feed.started == HI
    assert segs(feed) == [("window", 0, HI), ("events", events - 60, HI)]
    assert feed.events_types == ("product.deleted",)
    deletions = feed.segments[1]
    run.emission.emit_segment(feed, deletions, [])
    assert cursors(run, "products")["events"] == events


def test_a_resync_in_progress_resumes_where_it_stopped():
    run = make_run(bookmark(resync={"version": 5, "created": NOW - 9 * DAY, "started": NOW - 10 * DAY},
                            events=NOW - 20 * DAY))
    feed = planned(run)
    assert feed.resync and feed.version == 5 and feed.started == NOW - 10 * DAY
    assert segs(feed)[0] == ("window", NOW - 9 * DAY, HI)


def test_many_event_types_are_read_in_groups_and_only_the_last_moves_the_bookmark():
    spec = dataclasses.replace(SPECS["charges"], event_types=tuple(f"charge.t{i}" for i in range(45)))
    run = make_run(bookmark(created=NOW - DAY, events=NOW - DAY), specs={**SPECS, "charges": spec})
    feed = planned(run)
    events = [s for s in feed.segments if s.kind == "events"]
    assert [len(s.types) for s in events] == [20, 20, 5]
    assert [s.advances for s in events] == [False, False, True]
    assert all((s.lo, s.hi) == (NOW - DAY, HI) for s in events)


# --------------------------------------------------------------------------- emitting
def test_an_emitted_window_moves_every_live_member_s_created_bookmark_to_its_end():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    window = feed.segments[0]
    output = [("customers", "new", b'{"type":"RECORD"}\n', 1), ("customer_tax_ids", "new", [{"id": "txi_1"}], 1)]
    run.emission.emit_segment(feed, Segment("window", NOW - 9 * DAY, NOW - 8 * DAY), output)
    assert run.out.lines == [b'{"type":"RECORD"}\n']
    assert run.out.records == [("customer_tax_ids", {"id": "txi_1"}, VERSION)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", run.out.extracted[0])
    assert abs(time.mktime(time.strptime(run.out.extracted[0], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())) < 60
    assert cursors(run, "customers")["created"] == NOW - 8 * DAY
    # (each member keeps its own events bookmark, set where a first load's events begin)
    assert cursors(run, "customer_tax_ids") == {"created": NOW - 8 * DAY, "events": HI}
    assert feed.emitted_hi == NOW - 8 * DAY and feed.progress_lo == NOW - 9 * DAY
    assert run.emission.state_dirty
    assert run.summary.stream("customers").new == 1
    run.emission.emit_segment(feed, window, [])  # an empty window still moves the bookmarks
    assert cursors(run, "customer_tax_ids") == {"created": HI, "events": HI}
    assert feed.progress_lo == NOW - 9 * DAY


def test_an_empty_first_window_does_not_set_where_the_data_starts():
    run = make_run()
    feed = planned(run)
    run.emission.emit_segment(feed, Segment("window", 0, NOW - DAY), [])
    assert feed.progress_lo is None and feed.emitted_hi == NOW - DAY


def test_skipped_streams_are_not_written_nor_moved():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    tax_ids = next(m for m in feed.root.children if m.spec.name == "customer_tax_ids")
    tax_ids.skipped = "permission denied"
    run.emission.emit_segment(feed, Segment("window", 0, NOW - DAY),
                      [("customer_tax_ids", "new", b"t\n", 1), ("customers", "new", b"c\n", 1),
                       ("customer_tax_ids", "new", [{"id": "txi_1"}], 1), ("customers", "new", [{"id": "cus_1"}], 1)])
    assert run.out.lines == [b"c\n"]
    assert run.out.records == [("customers", {"id": "cus_1"}, VERSION)]
    assert cursors(run, "customers")["created"] == NOW - DAY
    # Only where its first load's events begin, saved when the run was planned.
    assert cursors(run, "customer_tax_ids") == {"events": HI}


def test_a_window_of_a_resync_moves_the_resync_not_the_created_bookmark():
    run = make_run(bookmark(created=NOW - DAY, events=NOW - DAY), full_resync_streams={"charges"})
    feed = planned(run)
    run.emission.emit_segment(feed, Segment("window", 0, NOW - 5 * DAY), [])
    assert cursors(run)["resync"]["version"] == VERSION
    assert cursors(run)["resync"]["created"] == NOW - 5 * DAY
    assert cursors(run)["created"] == NOW - DAY


def test_a_window_of_a_resync_keeps_when_the_resync_started():
    """Found by mutation testing: `_emit_segment` rewrote `resync` without `started`, so a
    resync killed after its first window ended with an older events bookmark (after a 30-day
    gap: another full re-read)."""
    run = make_run(bookmark(created=NOW - DAY, events=NOW - DAY), full_resync_streams={"charges"})
    feed = planned(run)
    run.emission.emit_segment(feed, Segment("window", 0, NOW - 5 * DAY), [])
    assert cursors(run)["resync"] == {"version": VERSION, "created": NOW - 5 * DAY, "started": HI,
                                      "streams": ["charges"]}


def test_events_move_the_events_bookmark_only_from_the_last_group():
    run = make_run(bookmark(created=NOW - DAY, events=NOW - 2 * DAY))
    feed = planned(run)
    run.emission.emit_segment(feed, Segment("events", NOW - 2 * DAY, NOW - DAY, advances=False), [])
    assert cursors(run)["events"] == NOW - 2 * DAY
    run.emission.emit_segment(feed, Segment("events", NOW - 2 * DAY, NOW - DAY), [])
    assert cursors(run)["events"] == NOW - DAY
    run.emission.emit_segment(feed, Segment("events", NOW - 2 * DAY, NOW - 3 * DAY), [])
    assert cursors(run)["events"] == NOW - DAY  # never back
    assert cursors(run)["created"] == NOW - DAY


def test_pages_and_singletons_move_no_bookmark():
    run = make_run(selected=("country_specs",))
    feed = planned(run, "country_specs")
    run.emission.emit_segment(feed, Segment("pages", cursor="cs_1"), [("country_specs", "new", b"x\n", 1)])
    run.emission.emit_segment(feed, Segment("window"), [])  # a window without bounds
    assert run.state.data["bookmarks"] == {} and run.out.lines == [b"x\n"]
    assert run.emission.state_dirty


def test_an_emitted_report_moves_the_report_bookmark_and_its_pending_payouts():
    run = make_run(selected=("report_balance_summary",))
    feed = planned(run, "report_balance_summary")
    task = SimpleNamespace(bookmark_after=NOW - DAY, pending_after=None)
    run.emission.emit_segment(feed, Segment("report", task=task), [])
    assert cursors(run, "report_balance_summary") == {"report": NOW - DAY}
    task = SimpleNamespace(bookmark_after=NOW, pending_after=("po_1", "po_2"))
    run.emission.emit_segment(feed, Segment("report", task=task), [])
    assert cursors(run, "report_balance_summary") == {"report": NOW, "report_pending": ["po_1", "po_2"]}
    run.emission.emit_segment(feed, Segment("report", task=SimpleNamespace(bookmark_after=NOW, pending_after=())), [])
    assert cursors(run, "report_balance_summary") == {"report": NOW}


# --------------------------------------------------------------------------- finishing
def test_the_end_of_a_resync_sets_created_version_and_events_at_once():
    run = make_run(bookmark(created=NOW - DAY, events=NOW - 2 * DAY, version=7),
                   selected=("charges",), full_resync_streams={"charges"})
    feed = planned(run)
    run.emission.finish(feed)
    # `reconciled`: when this full re-read began, which the periodic reconciliation counts from.
    assert cursors(run) == {"created": HI, "events": HI, "version": VERSION, "reconciled": HI}
    assert run.out.messages == [{"type": "ACTIVATE_VERSION", "stream": "charges", "version": VERSION}]
    assert run.emission.state_dirty


def test_the_end_of_a_resync_of_a_stream_without_events_sets_no_events_bookmark():
    run = make_run(selected=("balance_transactions",), full_resync_streams={"balance_transactions"})
    feed = planned(run, "balance_transactions")
    run.emission.finish(feed)
    assert cursors(run, "balance_transactions") == {"created": HI, "version": VERSION, "reconciled": HI}


def test_a_skipped_resync_sets_neither_version_nor_events():
    run = make_run(bookmark(events=NOW - 2 * DAY), full_resync_streams={"charges"})
    feed = planned(run)
    feed.root.skipped = "permission denied"
    run.emission.finish(feed)
    assert cursors(run) == {"events": NOW - 2 * DAY}
    assert run.out.messages == []


def test_an_incremental_feed_ends_without_touching_bookmarks_or_versions():
    state = bookmark(created=NOW - DAY, events=NOW - DAY, version=7)
    run = make_run(state)
    feed = planned(run)
    run.emission.finish(feed)
    assert cursors(run) == {"created": NOW - DAY, "events": NOW - DAY, "version": 7}
    assert run.out.messages == []


def test_versions_are_activated_per_live_member_unless_several_accounts_are_read():
    run = make_run(selected=("customers", "customer_tax_ids"), full_resync_streams={"customers"})
    feed = planned(run, "customers")
    run.emission.finish(feed)
    assert run.out.messages == [{"type": "ACTIVATE_VERSION", "stream": "customers", "version": VERSION},
                                {"type": "ACTIVATE_VERSION", "stream": "customer_tax_ids", "version": VERSION}]
    run = make_run(selected=("country_specs",), activate=False)
    run.emission.finish(planned(run, "country_specs"))
    assert run.out.messages == []
    run = make_run(selected=("country_specs",))
    run.emission.finish(planned(run, "country_specs"))
    assert run.out.messages == [{"type": "ACTIVATE_VERSION", "stream": "country_specs", "version": VERSION}]


# --------------------------------------------------------------------------- stealing
class LockThatActs:
    """A stand-in for Paging.lock that does `action` (what a worker did meanwhile) when taken."""

    def __init__(self, action):
        self.action = action

    def __enter__(self):
        self.action()

    def __exit__(self, *exc):
        return False


def paging(lo, hi, reached, read, **kw):
    return Segment("window", lo, hi, reached=reached, read=read, future=Future(), **kw)


def test_steal_takes_the_older_half_of_the_unread_part_of_the_fullest_window():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    small = paging(0, 1_000, 500, 300)  # 300 left at its density
    big = paging(1_000, 3_000, 2_000, 400)  # 400 read over [2000, 3000): 400 left in [1000, 2000)
    feed.segments.extend([small, big])
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    assert big.lo == 1_500 and big.hi == 3_000
    stolen = feed.segments[1]
    assert (stolen.kind, stolen.lo, stolen.hi, stolen.estimate) == ("window", 1_000, 1_500, 200)
    assert list(feed.segments) == [small, stolen, big]
    assert run.scheduler.executor.submitted == [(run.fetcher.fetch, (feed, stolen))] and stolen.future is not None


def test_steal_needs_enough_objects_left_and_two_seconds():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    # Read over [500, 2500): [0, 500) left unread holds a quarter of what was read, and what was
    # read is enough to trust its density.
    assert 4 * (STEAL_MIN_OBJECTS - 1) >= STEAL_MIN_READ
    feed.segments.append(paging(0, 2_500, 500, 4 * (STEAL_MIN_OBJECTS - 1)))  # one object short
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    feed.segments[0] = paging(0, 2_500, 500, 4 * STEAL_MIN_OBJECTS)  # exactly STEAL_MIN_OBJECTS left
    assert run.scheduler.steal(feed, run.fetcher.fetch) and feed.segments[0].hi == 250 and feed.segments[1].lo == 250
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    feed.segments.append(paging(10, 12, 11, 10_000))  # a one-second unread part
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    feed.segments[0] = paging(10, 13, 12, 10_000)
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    assert [(s.lo, s.hi) for s in feed.segments] == [(10, 11), (11, 13)]


def test_steal_leaves_windows_not_paging_closed_ready_or_of_events():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    feed.segments.extend([paging(0, 1_000, 500, 10_000, closed=True), paging(0, 1_000, 500, 10_000, ready=True),
                          Segment("window", 0, 1_000, read=10_000, future=Future()),
                          Segment("events", 0, 1_000, reached=500, read=10_000, future=Future())])
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    assert run.scheduler.executor.submitted == []


def test_steal_rechecks_a_window_closed_under_the_lock():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    window = paging(0, 1_000, 500, 10_000)
    feed.segments.append(window)

    run.scheduler.paging.lock = LockThatActs(lambda: setattr(window, "closed", True))
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    assert window.lo == 0 and len(feed.segments) == 1


def test_steal_goes_past_windows_it_cannot_share():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    window = paging(0, 1_000, 500, 10_000)
    feed.segments.extend([paging(0, 1_000, 500, 10_000, ready=True), Segment("pages"), window])
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    assert feed.segments[2].lo == 0 and window.lo == 250


def test_steal_prefers_a_window_it_can_cut_over_a_fuller_one_it_cannot():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    one_second = paging(5_000, 5_100, 5_001, 100_000)  # [5000, 5001) unread: cannot be cut
    window = paging(0, 1_000, 500, max(STEAL_MIN_OBJECTS, STEAL_MIN_READ))
    feed.segments.extend([one_second, window])
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    assert one_second.lo == 5_000 and window.lo == 250


def test_steal_cuts_at_a_whole_second_and_estimates_from_the_density_read():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    window = paging(0, 1_001, 501, 500)  # 500 read over [501, 1001): one a second, 501 left
    feed.segments.append(window)
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    stolen = feed.segments[0]
    assert (stolen.lo, stolen.hi, window.lo) == (0, 250, 250)
    assert type(stolen.hi) is int and type(window.lo) is int
    assert stolen.estimate == 250
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    feed.segments.append(paging(0, 1_200, 1_000, 200))  # 200 read over 200 seconds: 1000 left
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    assert feed.segments[0].estimate == 500


def test_a_small_stream_never_steals():
    """A steal costs a partial page: a stream of fewer than ten pages (which costs at most its
    pages plus two requests) does not steal, however its last window looks."""
    run = make_run()
    feed = planned(run)
    feed.segments.clear()
    feed.segments.append(paging(0, 2_500, 500, 4 * STEAL_MIN_OBJECTS))  # a steal if the feed were large
    feed.listed = STEAL_MIN_LISTED - 1
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    feed.listed = STEAL_MIN_LISTED
    assert run.scheduler.steal(feed, run.fetcher.fetch)


def test_a_window_counts_the_objects_its_feed_listed():
    """`Feed.listed`, which lets a feed steal, grows by each page a window reads (left at 0, a
    large stream would never steal)."""
    from tap_stripe.output.records import RecordShaper

    objects = [{"id": f"ch_{i:04d}", "object": "charge", "created": HI - 1 - i} for i in range(250)]

    class Pages:  # newest first, 100 a page, within the window's created bounds
        def get(self, path, params, **_):
            query = dict(params)
            rows = [o for o in objects if query["created[gte]"] <= o["created"] < query["created[lt]"]]
            if "starting_after" in query:
                rows = rows[[o["id"] for o in rows].index(query["starting_after"]) + 1:]
            return {"data": rows[:100], "has_more": len(rows) > 100}

        def received(self):
            return 0

    run = make_run()
    feed = planned(run)
    run.fetcher.client = Pages()
    run.fetcher.scope.shapers["charges"] = RecordShaper({"properties": {"id": {}, "created": {}}}, "created")
    run.fetcher.fetch(feed, Segment("window", HI - 1_000, HI))
    assert feed.listed == 250


def test_steal_waits_for_a_density_measured_on_two_pages():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    feed.segments.append(paging(0, 1_000, 999, STEAL_MIN_READ - 1))  # thousands left, at one page's density
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    feed.segments[0] = paging(0, 1_000, 999, STEAL_MIN_READ)
    assert run.scheduler.steal(feed, run.fetcher.fetch)


def test_steal_rechecks_a_window_paged_further_under_the_lock():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    window = paging(100, 1_000, 500, 10_000)
    feed.segments.append(window)

    # the worker read down to one second above lo meanwhile
    run.scheduler.paging.lock = LockThatActs(lambda: setattr(window, "reached", 101))
    assert not run.scheduler.steal(feed, run.fetcher.fetch)
    assert window.lo == 100 and len(feed.segments) == 1


# --------------------------------------------------------------------------- several accounts
def accounts_state():
    return {"bookmarks": {"charges": {"accounts": {
        "default": {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY, "version": 9},
        "acct_1": {"created": NOW - 2 * DAY, "events": NOW - 3 * DAY, "version": 7},
        "acct_3": {"created": NOW - 4 * DAY}}}}}


def test_each_account_plans_from_its_own_bookmarks():
    run = make_run(accounts_state())
    feed = planned(run, "charges", "acct_1")
    assert segs(feed) == [("window", NOW - 2 * DAY, HI), ("events", NOW - 3 * DAY, HI)]
    assert feed.version == 7
    first = planned(run, "charges", "acct_2")
    assert segs(first) == [("window", 0, HI)] and first.version == VERSION
    assert cursors(run, account="acct_2") == {"events": HI, "version": VERSION}
    old = planned(run, "charges", "acct_3")
    assert segs(old)[-1] == ("events", NOW - 4 * DAY, HI)
    assert cursors(run, account="acct_3") == {"created": NOW - 4 * DAY, "events": NOW - 4 * DAY,
                                              "version": VERSION}
    assert cursors(run) == {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY, "version": 9}


def test_each_account_moves_its_own_bookmarks():
    run = make_run(accounts_state())
    feed = planned(run, "charges", "acct_1")
    run.emission.emit_segment(feed, Segment("window", NOW - 2 * DAY, NOW - DAY), [])
    run.emission.emit_segment(feed, Segment("events", NOW - 3 * DAY, NOW - DAY), [])
    assert cursors(run, account="acct_1") == {"created": NOW - DAY, "events": NOW - DAY, "version": 7}
    assert cursors(run) == {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY, "version": 9}
    report = planned(make_run(selected=("report_balance_summary",)), "report_balance_summary", "acct_1")
    run.emission.emit_segment(
        report, Segment("report", task=SimpleNamespace(bookmark_after=NOW, pending_after=("po_1",))), [])
    assert cursors(run, "report_balance_summary", "acct_1") == {"report": NOW, "report_pending": ["po_1"]}
    assert cursors(run, "report_balance_summary") is None


def test_a_resync_of_one_account_leaves_the_others_alone():
    state = accounts_state()
    state["bookmarks"]["charges"]["accounts"]["acct_1"]["resync"] = {"version": 5, "created": NOW - 6 * DAY,
                                                                     "started": NOW - 7 * DAY}
    run = make_run(state)
    assert not planned(run, "charges").resync
    feed = planned(run, "charges", "acct_1")
    assert feed.resync and feed.version == 5
    run.emission.emit_segment(feed, Segment("window", NOW - 6 * DAY, NOW - 5 * DAY), [])
    assert cursors(run, account="acct_1")["resync"]["created"] == NOW - 5 * DAY
    run.emission.finish(feed)
    assert cursors(run, account="acct_1") == {"created": HI, "events": HI, "version": 5,  # resumed: caught up to HI
                                              "reconciled": NOW - 7 * DAY}  # counted from when it began
    assert cursors(run) == {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY, "version": 9}


# --------------------------------------------------------------------------- streams without events
def test_a_stream_without_events_plans_only_its_window_and_keeps_no_events_bookmark():
    state = {"created": NOW - DAY, "pending": NOW - DAY}
    run = make_run({"bookmarks": {"balance_transactions": {"accounts": {"default": dict(state)}}}},
                   selected=("balance_transactions",))
    feed = planned(run, "balance_transactions")
    assert segs(feed) == [("window", NOW - DAY, HI)]
    assert cursors(run, "balance_transactions") == {**state, "version": VERSION}
    run = make_run(selected=("balance_transactions",))
    assert segs(planned(run, "balance_transactions")) == [("window", 0, HI)]
    assert cursors(run, "balance_transactions") == {"version": VERSION}


def test_a_resync_does_not_save_an_events_bookmark_at_its_start():
    run = make_run(selected=("charges",), full_resync_streams={"charges"})
    feed = planned(run)
    assert segs(feed) == [("window", 0, HI)]
    assert cursors(run) == {"resync": {"version": VERSION, "created": None, "started": HI, "streams": ["charges"]}}


# --------------------------------------------------------------------------- the 30-day warning
@pytest.mark.parametrize("account,where", [(None, ""), ("acct_1", " account acct_1")])
def test_the_30_day_fallback_says_which_stream_and_bookmark(caplog, account, where):
    old = GUARD - 1
    state = {"bookmarks": {"charges": {"accounts": {account or "default": {"created": NOW - DAY, "events": old}}}}}
    run = make_run(state)
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        planned(run, "charges", account)
    assert caplog.messages == [
        f"Stream charges{where}: its events bookmark ({rfc3339(old)}) is older than Stripe keeps events (30 days, "
        "less a day of margin); re-reading the whole list instead, as a new table version, so no change is "
        "missed and deleted objects can be dropped."]


# --------------------------------------------------------------------------- resync and floors
def test_a_resync_begun_by_an_older_tap_starts_from_the_newest_safe_time():
    start = NOW - 300 * DAY
    cases = [({"created": NOW - 8 * DAY, "events": NOW - 6 * DAY}, NOW - 6 * DAY, NOW - 2 * DAY),  # events
             ({"created": NOW - 8 * DAY}, NOW - 8 * DAY, NOW - 2 * DAY),  # else created
             ({}, GUARD, start)]  # else the oldest event Stripe keeps; no resync `created`: start_date
    for cursors_, started, lo in cases:
        resync = {"version": 5, "created": NOW - 2 * DAY} if cursors_ else {"version": 5}
        run = make_run(bookmark(resync=resync, **cursors_), start=start)
        feed = planned(run)
        assert (feed.resync, feed.version, feed.started) == (True, 5, started)
        assert segs(feed)[0] == ("window", lo, HI)


def test_a_resync_sets_every_member_s_floor_to_start_date():
    start = NOW - 300 * DAY
    run = make_run({"bookmarks": {"customers": {"accounts": {"default": {"created": NOW - DAY, "events": NOW - DAY}}},
                                  "customer_tax_ids": {"accounts": {"default": {"created": NOW - DAY}}}}},
                   selected=("customers", "customer_tax_ids"), full_resync_streams={"customers"}, start=start)
    feed = planned(run, "customers")
    assert {m.floor for m in feed.root.walk()} == {start}


def test_a_resync_of_an_account_is_saved_and_reads_deletions_from_that_account_s_events():
    run = make_run({"bookmarks": {"products": {"accounts": {"acct_1": {"created": NOW - DAY,
                                                                       "events": NOW - 2 * DAY}}}}},
                   selected=("products",), full_resync_streams={"products"})
    feed = planned(run, "products", "acct_1")
    assert segs(feed) == [("window", 0, HI), ("events", NOW - 2 * DAY, HI)]
    assert cursors(run, "products", "acct_1")["resync"] == {"version": VERSION, "created": None, "started": HI,
                                                            "streams": ["products"]}
    assert cursors(run, "products") is None


def test_deletions_are_read_from_no_earlier_than_stripe_keeps_events():
    run = make_run({"bookmarks": {"products": {"accounts": {"default": {"events": NOW - 90 * DAY}}}}},
                   selected=("products",), full_resync_streams={"products"})
    assert segs(planned(run, "products"))[-1] == ("events", NOW - EVENTS_RETENTION, HI)


def test_a_family_s_window_starts_at_its_oldest_selected_member_s_floor():
    state = {"bookmarks": {"customers": {"accounts": {"default": {"created": NOW - DAY, "events": NOW - DAY}}},
                           "customer_tax_ids": {"accounts": {"default": {"created": NOW - 3 * DAY}}}}}
    run = make_run(state, selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    assert segs(feed)[0] == ("window", NOW - 3 * DAY, HI)
    floors = {m.spec.name: m.floor for m in feed.root.walk()}
    # a member reads from the lowest floor of itself and the selected members below it
    assert floors == {"customers": NOW - 3 * DAY, "customer_tax_ids": NOW - 3 * DAY}


def test_an_unselected_parent_reads_from_its_selected_child_s_floor():
    state = {"bookmarks": {"customers": {"accounts": {"default": {"created": NOW - DAY, "events": NOW - DAY}}},
                           "customer_tax_ids": {"accounts": {"default": {"created": NOW - 3 * DAY}}}}}
    run = make_run(state, selected=("customer_tax_ids",), start=NOW - 50 * DAY)
    feed = planned(run, "customers")
    assert segs(feed)[0] == ("window", NOW - 3 * DAY, HI)
    assert feed.root.floor == NOW - 3 * DAY
    run = make_run(state, selected=("customers", "customer_tax_ids"), start=NOW - 50 * DAY)
    assert segs(planned(run, "customers"))[0] == ("window", NOW - 3 * DAY, HI)


def test_an_older_tap_s_resync_of_an_account_starts_from_that_account_s_bookmarks():
    for cursors_, started in (({"events": NOW - 6 * DAY, "created": NOW - 8 * DAY}, NOW - 6 * DAY),
                              ({"created": NOW - 8 * DAY}, NOW - 8 * DAY)):
        state = {"bookmarks": {"charges": {"accounts": {
            "default": {"created": NOW - 3 * DAY, "events": NOW - 2 * DAY},
            "acct_1": {"resync": {"version": 5, "created": NOW - 9 * DAY}, **cursors_}}}}}
        feed = planned(make_run(state), "charges", "acct_1")
        assert feed.resync and feed.started == started


# --------------------------------------------------------------------------- resync: what its events read
def test_a_resumed_resync_reads_every_change_since_it_began():
    started, events = NOW - 3 * DAY, NOW - 5 * DAY
    run = make_run(bookmark(resync={"version": 5, "created": NOW - 4 * DAY, "started": started}, events=events),
                   lookback=60)
    feed = planned(run)
    assert feed.resync and not feed.deletions_only and feed.events_types == SPECS["charges"].event_types
    assert segs(feed) == [("window", NOW - 4 * DAY, HI), ("events", events - 60, HI)]
    run = make_run(bookmark(resync={"version": 5, "created": NOW - 4 * DAY, "started": started}), lookback=60)
    assert segs(planned(run))[-1] == ("events", started - 60, HI)  # no events bookmark: since it began
    run = make_run(bookmark(resync={"version": 5, "created": NOW - 4 * DAY, "started": GUARD + 60},
                            events=NOW - 40 * DAY), lookback=60)
    assert segs(planned(run))[-1] == ("events", NOW - EVENTS_RETENTION, HI)  # no older than Stripe keeps


def test_a_resync_begun_longer_ago_than_stripe_keeps_events_begins_again():
    kept = make_run(bookmark(resync={"version": 5, "created": NOW - 4 * DAY, "started": GUARD + 60}), lookback=60)
    assert planned(kept).version == 5  # its changes since are all still in Stripe's events
    gone = make_run(bookmark(resync={"version": 5, "created": NOW - 4 * DAY, "started": GUARD + 59}), lookback=60,
                    start=NOW - 90 * DAY)
    feed = planned(gone)
    assert feed.version == VERSION and feed.started == HI and segs(feed)[0] == ("window", NOW - 90 * DAY, HI)
    assert cursors(gone)["resync"] == {"version": VERSION, "created": NOW - 90 * DAY, "started": HI,
                                       "streams": ["charges"]}


def test_a_fresh_resync_reads_deletions_and_the_updates_that_remove_embedded_children_only():
    events = NOW - 2 * DAY
    state = {"bookmarks": {name: {"accounts": {"default": {"events": events}}}
                           for name in ("subscriptions", "customers")}}
    run = make_run(state, selected=("subscriptions", "subscription_items"), full_resync_streams={"subscriptions"},
                   lookback=60)
    feed = planned(run, "subscriptions")
    # subscription items have no events of their own: the subscription's updates say which left
    assert feed.deletions_only and "customer.subscription.updated" in feed.events_types
    assert segs(feed)[-1] == ("events", events - 60, HI)
    run = make_run(state, selected=("customers", "customer_tax_ids"), full_resync_streams={"customers"}, lookback=60)
    feed = planned(run, "customers")
    # every child of a customer embedded in it has events of its own: deletions are enough
    assert feed.deletions_only and feed.events_types and all(t.endswith(".deleted") for t in feed.events_types)
    assert "customer.deleted" in feed.events_types and "customer.tax_id.deleted" in feed.events_types


def test_a_first_load_window_is_open_and_an_incremental_one_is_not():
    from tap_stripe.engine.windows import FIRST_FANOUT

    feed = planned(make_run())  # from the beginning: nothing says where the data begins
    assert feed.segments[0].fanout == FIRST_FANOUT and feed.listed_from == 0
    feed = planned(make_run(start=NOW - 10 * DAY))
    assert feed.segments[0].fanout == FIRST_FANOUT and feed.listed_from == NOW - 10 * DAY
    feed = planned(make_run(bookmark(created=NOW - 2 * DAY, events=NOW - 3 * DAY, version=7), lookback=60))
    assert feed.segments[0].fanout is None and feed.listed_from == NOW - 2 * DAY - 60


def test_steal_looks_past_a_window_read_too_little_and_at_a_last_second_gap():
    run = make_run()
    feed = planned(run)
    feed.listed = STEAL_MIN_LISTED  # not a small stream
    feed.segments.clear()
    young = paging(0, 1_000, 999, STEAL_MIN_READ - 1)
    tight = paging(2_000, 2_003, 2_002, 200)  # 200 read in the window's last second: 400 left in 2 s
    feed.segments.extend([young, tight])
    assert run.scheduler.steal(feed, run.fetcher.fetch)
    stolen = feed.segments[1]
    assert (stolen.lo, stolen.hi, stolen.estimate, tight.lo, young.lo) == (2_000, 2_001, 200, 2_001, 0)


def test_a_resync_resumed_with_a_stream_that_missed_its_first_part_begins_again():
    """Found by the simulation: a customers resync killed while customer_tax_ids was deselected,
    resumed once it was selected again, wrote the tax ids of the rest only; its ACTIVATE_VERSION
    then dropped the live tax ids of the first part. A stream that did not receive every window
    of a resync so far makes it begin again; the streams that did are kept in the state."""
    state = {"bookmarks": {"customers": {"accounts": {"default": {
        "events": NOW - DAY, "resync": {"version": 5, "created": NOW - 9 * DAY, "started": NOW - DAY,
                                        "streams": ["customers"]}}}}}}
    run = make_run(json.loads(json.dumps(state)), selected=("customers", "customer_tax_ids"), lookback=60)
    feed = planned(run, "customers")
    assert feed.resync and feed.version == VERSION and segs(feed)[0][1] == 0
    assert cursors(run, "customers")["resync"]["streams"] == ["customer_tax_ids", "customers"]
    # The same state with only the streams it was read for resumes in its version.
    run = make_run(json.loads(json.dumps(state)), selected=("customers",), lookback=60)
    feed = planned(run, "customers")
    assert feed.resync and feed.version == 5 and segs(feed)[0][1] == NOW - 9 * DAY
    # A window emitted while a stream is skipped drops it from the streams of the version.
    run = make_run(json.loads(json.dumps(state)), selected=("customers", "customer_tax_ids"), lookback=60)
    feed = planned(run, "customers")
    next(m for m in feed.root.children if m.spec.name == "customer_tax_ids").skipped = "permission denied"
    run.emission.emit_segment(feed, feed.segments[0], [])
    assert cursors(run, "customers")["resync"]["streams"] == ["customers"]
