"""Emission, in-process: what writing a segment moves (done spans, a resync's progress, the
oldest object that may still change), skipping a stream, and when STATE is written. The
bookmarks of emitted windows and events are pinned in test_engine_bookmarks.py."""

from __future__ import annotations

import time
from concurrent.futures import Future
from types import SimpleNamespace

import orjson
import pytest
from test_engine_bookmarks import DAY, HI, NOW, bookmark, cursors, make_run, planned

from tap_stripe.api.client import PermissionDenied, ProductNotSetUp
from tap_stripe.engine import emission as emission_module
from tap_stripe.engine.emission import STATE_INTERVAL, STATE_RECORDS, _after, _merged
from tap_stripe.engine.feeds import GroupKind, Segment
from tap_stripe.errors import FatalRunError


def state_of(**streams):
    return {"bookmarks": {s: {"accounts": accounts} for s, accounts in streams.items()}}


# --------------------------------------------------------------------------- done spans
def test_done_spans_are_merged_sorted_and_joined_where_they_touch():
    assert _merged(None, [5, 9]) == [[5, 9]]
    assert _merged([[1, 3], [10, 12]], [5, 9]) == [[1, 3], [5, 9], [10, 12]]
    assert _merged([[1, 5], [10, 12]], [5, 10]) == [[1, 12]]
    assert _merged([[1, 6]], [2, 4]) == [[1, 6]]
    assert _merged([[4, 6]], [1, 5]) == [[1, 6]]
    assert _merged([[1, 3]], [4, 5]) == [[1, 3], [4, 5]]


def test_done_spans_ahead_of_a_bookmark_are_kept():
    assert _after(None, 5) is None
    assert _after([], 5) is None
    assert _after([[1, 5]], 5) is None  # ends at the bookmark: behind it
    assert _after([[1, 5], [4, 6], [8, 9]], 5) == [[4, 6], [8, 9]]


def test_a_span_written_ahead_of_the_bookmark_is_recorded_for_each_live_member_of_its_account():
    state = state_of(customers={"acct_1": {"created": NOW - 10 * DAY, "done": [[NOW - 3 * DAY, NOW - 2 * DAY]]},
                                "default": {"created": NOW - 10 * DAY}})
    run = make_run(state, selected=("customers", "customer_tax_ids", "customer_sources"))
    feed = planned(run, "customers", "acct_1")
    next(m for m in feed.root.children if m.spec.name == "customer_sources").skipped = "denied"
    run.emission.state_dirty = False
    run.emission.record_done(feed, NOW - 5 * DAY, NOW - 3 * DAY)
    assert cursors(run, "customers", "acct_1")["done"] == [[NOW - 5 * DAY, NOW - 2 * DAY]]
    assert cursors(run, "customer_tax_ids", "acct_1")["done"] == [[NOW - 5 * DAY, NOW - 3 * DAY]]
    assert "done" not in (cursors(run, "customer_sources", "acct_1") or {})
    assert "done" not in cursors(run, "customers")
    assert run.emission.state_dirty
    run.emission.state_dirty = False
    run.emission.record_done(feed, NOW - DAY, NOW - DAY)  # empty: nothing
    assert not run.emission.state_dirty
    assert cursors(run, "customers", "acct_1")["done"] == [[NOW - 5 * DAY, NOW - 2 * DAY]]


def test_a_span_of_a_resync_is_recorded_in_the_resync():
    resync = {"version": 5, "created": NOW - 10 * DAY, "started": NOW - 11 * DAY}
    state = state_of(charges={"acct_1": {"resync": dict(resync), "events": NOW - 11 * DAY},
                              "default": {"resync": dict(resync), "events": NOW - 11 * DAY}})
    run = make_run(state)
    feed = planned(run, "charges", "acct_1")
    run.emission.record_done(feed, NOW - 5 * DAY, NOW - 3 * DAY)
    run.emission.record_done(feed, NOW - 3 * DAY, NOW - 2 * DAY)
    assert cursors(run, account="acct_1")["resync"] == {**resync, "done": [[NOW - 5 * DAY, NOW - 2 * DAY]]}
    assert cursors(run)["resync"] == resync
    assert "done" not in cursors(run, account="acct_1")
    # a resync no longer in the state (ended): nothing recorded
    run.state.set("charges", "acct_1", "resync", None)
    run.emission.record_done(feed, NOW - DAY, HI)
    assert "resync" not in cursors(run, account="acct_1")


def test_the_bookmark_moving_past_done_spans_drops_them():
    state = state_of(customers={"acct_1": {"created": NOW - 10 * DAY, "events": HI,
                                           "done": [[NOW - 8 * DAY, NOW - 6 * DAY], [NOW - 4 * DAY, NOW - 3 * DAY]]},
                                "default": {"done": [[NOW - 8 * DAY, NOW - 6 * DAY]]}},
                     customer_tax_ids={"acct_1": {"created": NOW - 10 * DAY, "events": HI,
                                                  "done": [[NOW - 8 * DAY, NOW - 6 * DAY]]}})
    run = make_run(state, selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers", "acct_1")
    run.emission.emit_segment(feed, Segment("window", NOW - 10 * DAY, NOW - 6 * DAY), [])
    assert cursors(run, "customers", "acct_1")["done"] == [[NOW - 4 * DAY, NOW - 3 * DAY]]
    assert "done" not in cursors(run, "customer_tax_ids", "acct_1")
    assert cursors(run, "customers")["done"] == [[NOW - 8 * DAY, NOW - 6 * DAY]]


def test_a_resync_window_drops_the_done_spans_behind_it_and_keeps_the_resync_s_other_keys():
    resync = {"version": 5, "created": NOW - 10 * DAY, "started": NOW - 11 * DAY, "extra": 1,
              "done": [[NOW - 8 * DAY, NOW - 6 * DAY], [NOW - 4 * DAY, NOW - 3 * DAY]]}
    other = {"version": 4, "created": NOW - 20 * DAY, "started": NOW - 21 * DAY, "done": [[NOW - 9 * DAY, HI]]}
    state = state_of(charges={"acct_1": {"resync": resync, "events": NOW - 11 * DAY},
                              "default": {"resync": other, "events": NOW - 11 * DAY}})
    run = make_run(state)
    feed = planned(run, "charges", "acct_1")
    run.emission.emit_segment(feed, Segment("window", NOW - 10 * DAY, NOW - 6 * DAY), [])
    assert cursors(run, account="acct_1")["resync"] == {
        "version": 5, "created": NOW - 6 * DAY, "started": NOW - 11 * DAY, "extra": 1,
        "done": [[NOW - 4 * DAY, NOW - 3 * DAY]], "streams": ["charges"]}
    run.emission.emit_segment(feed, Segment("window", NOW - 6 * DAY, NOW - 3 * DAY), [])
    assert cursors(run, account="acct_1")["resync"] == {
        "version": 5, "created": NOW - 3 * DAY, "started": NOW - 11 * DAY, "extra": 1, "streams": ["charges"]}
    assert cursors(run)["resync"] == other


def test_a_resync_s_streams_keep_out_a_stream_that_missed_its_earlier_windows():
    """The resync names the streams that received every window of its version: a child read
    now but not in its earlier windows (deselected or skipped then) stays out, so a resumed
    resync that needs it begins again rather than activate a version that lacks its rows."""
    run = make_run(state_of(), selected=("customers", "customer_tax_ids"), full_resync_streams=frozenset({"customers"}))
    feed = planned(run, "customers", "acct_1")
    resync = {**cursors(run, "customers", "acct_1")["resync"], "streams": ["customers"]}
    run.state.set("customers", "acct_1", "resync", resync)
    run.emission.emit_segment(feed, Segment("window", NOW - 10 * DAY, NOW - 6 * DAY), [])
    assert cursors(run, "customers", "acct_1")["resync"]["streams"] == ["customers"]
    run.state.set("customers", "acct_1", "resync", {k: v for k, v in resync.items() if k != "streams"})
    run.emission.emit_segment(feed, Segment("window", NOW - 6 * DAY, NOW - 3 * DAY), [])
    assert cursors(run, "customers", "acct_1")["resync"]["streams"] == ["customer_tax_ids", "customers"]


def test_a_full_table_s_written_page_saves_where_the_next_one_starts():
    run = make_run(selected=("country_specs",))
    feed = planned(run, "country_specs", "acct_1")
    earlier = [f"cs_{n}" for n in range(10, 22)]
    feed.segments.append(Segment("pages", cursor="cs_9", earlier=earlier))
    assert feed.full_read and len(feed.segments) == 2
    run.emission.emit_segment(feed, feed.segments[0], [])
    assert cursors(run, "country_specs", "acct_1")["table"] == {  # the ten cursors after it are enough
        "version": feed.version, "cursor": "cs_9", "earlier": earlier[:10], "streams": ["country_specs"]}
    run = make_run(selected=("country_specs",))
    feed = planned(run, "country_specs", "acct_1")
    feed.segments.append(Segment("pages"))  # no cursor: nothing to resume from
    run.emission.emit_segment(feed, feed.segments[0], [])
    assert "table" not in (cursors(run, "country_specs", "acct_1") or {})


def test_the_end_of_a_full_table_s_read_drops_its_progress_for_its_account_only():
    progress = {"version": 7, "cursor": "cs_9", "earlier": [], "streams": ["country_specs"]}
    run = make_run(state_of(country_specs={"acct_1": {"table": dict(progress)}, "acct_2": {"table": dict(progress)}}),
                   selected=("country_specs",))
    feed = planned(run, "country_specs", "acct_1")
    assert feed.version == 7
    run.emission.finish(feed)
    assert cursors(run, "country_specs", "acct_1") == {"version": 7}
    assert cursors(run, "country_specs", "acct_2") == {"table": progress}


# --------------------------------------------------------------------------- objects that settle later
def test_the_oldest_object_that_may_still_change_is_where_the_next_run_re_reads_from():
    name = "balance_transactions"
    run = make_run(state_of(balance_transactions={"default": {"pending": 1}}), selected=(name,))
    feed = planned(run, name, "acct_1")
    emit = run.emission.emit_segment
    emit(feed, Segment("window", NOW - 10 * DAY, NOW - 8 * DAY), [])
    assert cursors(run, name, "acct_1")["pending"] == NOW - 8 * DAY  # nothing pending: the window's end
    emit(feed, Segment("window", NOW - 8 * DAY, NOW - 6 * DAY, pending=NOW - 7 * DAY), [])
    assert cursors(run, name, "acct_1")["pending"] == NOW - 7 * DAY
    assert feed.pending_seen == NOW - 7 * DAY
    emit(feed, Segment("window", NOW - 6 * DAY, NOW - 4 * DAY, pending=NOW - 5 * DAY), [])
    assert cursors(run, name, "acct_1")["pending"] == NOW - 7 * DAY  # the oldest seen
    emit(feed, Segment("window", NOW - 4 * DAY, NOW - 7 * DAY - 5), [])  # (a window ending before it)
    assert cursors(run, name, "acct_1")["pending"] == NOW - 7 * DAY - 5
    assert cursors(run, name) == {"pending": 1}


def test_no_pending_bookmark_for_streams_that_settle_with_events_or_are_skipped_or_unselected():
    run = make_run(selected=("charges",))
    feed = planned(run)
    run.emission.emit_segment(feed, Segment("window", 0, NOW - DAY, pending=NOW - 2 * DAY), [])
    assert "pending" not in cursors(run)
    name = "balance_transactions"
    run = make_run(selected=(name,))
    feed = planned(run, name)
    feed.root.skipped = "denied"
    run.emission.advance_pending(feed, Segment("window", 0, NOW - DAY, pending=NOW - 2 * DAY))
    assert "pending" not in (cursors(run, name) or {})
    feed.root.skipped, feed.root.selected = None, False
    run.emission.advance_pending(feed, Segment("window", 0, NOW - DAY, pending=NOW - 2 * DAY))
    assert "pending" not in (cursors(run, name) or {})
    feed.root.selected = True
    run.emission.advance_pending(feed, Segment("window", 0, None, pending=NOW - 2 * DAY))
    assert "pending" not in (cursors(run, name) or {}) and feed.pending_seen is None
    run.emission.advance_pending(feed, Segment("window", 0, NOW - DAY, pending=NOW - 2 * DAY))
    assert cursors(run, name)["pending"] == NOW - 2 * DAY


# --------------------------------------------------------------------------- writing
def test_records_after_a_schema_change_follow_its_schema_and_are_counted_for_state():
    run = make_run(selected=("customers", "customer_tax_ids"))
    announced = []

    def schema_change(stream, since):
        announced.append((stream, since))
        return 3, [{"type": "SCHEMA", "stream": stream}], ["a new field"]

    run.emission.sinks.schema_change = schema_change
    feed = planned(run, "customers")
    output = [("customers", GroupKind.SCHEMA, 2, 0), ("customers", "new", b"c1\n", 1),
              ("customer_tax_ids", "new", [{"id": "txi_1"}, {"id": "txi_2"}], 2), ("customers", "new", b"c2\n", 1)]
    run.emission.write(feed, output)
    assert run.out.messages == [{"type": "SCHEMA", "stream": "customers"}]
    assert announced == [("customers", 0)] and run.emission.announced == {"customers": 3}
    assert run.out.lines == [b"c1\n", b"c2\n"]
    assert [r[1]["id"] for r in run.out.records] == ["txi_1", "txi_2"]
    assert run.emission._written == 4
    run.emission.write(feed, [("customers", GroupKind.SCHEMA, 3, 0), ("customers", "new", b"c3\n", 1)])
    assert announced == [("customers", 0)]  # as new as written: no other SCHEMA
    assert run.emission._written == 5
    next(m for m in feed.root.children if m.spec.name == "customer_tax_ids").skipped = "denied"
    run.emission.write(feed, [("customer_tax_ids", "new", [{"id": "txi_3"}], 1), ("customers", "new", b"c4\n", 1)])
    assert run.emission._written == 6
    assert run.summary.stream("customers").new == 4 and run.summary.stream("customer_tax_ids").new == 2


def test_records_carry_the_time_they_were_extracted():
    run = make_run()
    feed = planned(run)
    run.emission.write(feed, [("charges", "new", [{"id": "ch_1"}], 1)])
    extracted = time.mktime(time.strptime(run.out.extracted[0], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(extracted - time.mktime(time.gmtime())) < 60


# --------------------------------------------------------------------------- skipping
def test_skipping_a_child_stream_skips_it_and_its_children_and_keeps_the_feed():
    run = make_run(selected=("customers", "customer_tax_ids", "customer_sources"))
    feed = planned(run, "customers", "acct_1")
    tax_ids = next(m for m in feed.root.children if m.spec.name == "customer_tax_ids")
    sources = next(m for m in feed.root.children if m.spec.name == "customer_sources")
    segments = list(feed.segments)
    run.emission.skip(feed, tax_ids, PermissionDenied("no 'rak_tax_id_read'", status=403, request_id="req_1"))
    assert tax_ids.skipped == "permission denied (needs rak_tax_id_read) [HTTP 403, request id req_1]"
    assert sources.skipped is None and feed.root.skipped is None
    assert list(feed.segments) == segments
    assert run.summary.stream("customer_tax_ids").skipped == [
        "acct_1: permission denied (needs rak_tax_id_read) [HTTP 403, request id req_1]"]
    assert run.summary.stream("customers").skipped == [] and run.summary.stream("customer_sources").skipped == []


def test_skipping_a_feed_cancels_its_fetches_and_drops_its_segments():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    window = feed.segments[0]
    window.future, sub = Future(), Future()
    window.subs = [sub]
    feed.segments.append(Segment("events"))
    run.emission.skip(feed, feed.root, ProductNotSetUp("not set up", status=400))
    assert window.future.cancelled() and sub.cancelled() and not feed.segments
    assert {m.spec.name for m in feed.root.walk() if m.skipped} == {m.spec.name for m in feed.root.walk()}
    assert run.summary.stream("customers").skipped and run.summary.stream("customer_tax_ids").skipped


def test_a_permission_error_stops_the_run_when_asked_to():
    run = make_run(on_permission_error="fail")
    feed = planned(run, "charges", "acct_1")
    with pytest.raises(FatalRunError, match=r"^stream charges \[acct_1\]: denied$"):
        run.emission.skip(feed, feed.root, PermissionDenied("denied", status=403))
    assert not feed.root.skipped
    run.emission.skip(feed, feed.root, ProductNotSetUp("not set up", status=400))  # not a permission error
    assert feed.root.skipped


# --------------------------------------------------------------------------- STATE
def test_state_is_written_when_dirty_once_a_second_or_after_enough_records(monkeypatch):
    clock = [1_000.0]
    monkeypatch.setattr(emission_module, "time", SimpleNamespace(monotonic=lambda: clock[0], time=time.time))
    run = make_run(bookmark(created=NOW - DAY))
    emission = run.emission
    emission.write_state(force=True)
    assert run.out.messages == [{"type": "STATE", "value": run.state.data}]
    emission.maybe_write_state()  # not dirty
    clock[0] += 5
    emission.maybe_write_state()
    assert len(run.out.messages) == 1
    emission.state_dirty = True
    clock[0] = 1_000.0 + STATE_INTERVAL - 0.001
    emission.maybe_write_state()
    assert len(run.out.messages) == 1
    emission._written = STATE_RECORDS - 1
    emission.maybe_write_state()
    assert len(run.out.messages) == 1
    emission._written = STATE_RECORDS
    emission.maybe_write_state()
    assert len(run.out.messages) == 2 and emission._written == 0 and not emission.state_dirty
    emission.state_dirty = True
    clock[0] += STATE_INTERVAL - 0.001
    emission.maybe_write_state()
    assert len(run.out.messages) == 2
    clock[0] += 0.001
    emission.maybe_write_state()
    assert len(run.out.messages) == 3
    emission.write_state()  # not dirty, not forced
    assert len(run.out.messages) == 3


def test_a_large_state_calls_for_more_records_before_the_next():
    run = make_run()
    run.state.data["bookmarks"].update({f"s{i}": {"accounts": {"default": {"created": i}}} for i in range(1_000)})
    run.emission.write_state(force=True)
    size = len(orjson.dumps(run.out.messages[-1]))
    assert size // 200 > STATE_RECORDS
    assert run.emission._state_records == size // 200
    run = make_run()
    run.emission.write_state(force=True)
    assert run.emission._state_records == STATE_RECORDS


def test_the_end_of_a_full_read_bounded_by_end_date_moves_nothing():
    run = make_run(bookmark(created=NOW - DAY, events=NOW - 2 * DAY, version=7), full_resync_streams={"charges"})
    feed = planned(run)
    feed.bounded = True
    before = dict(cursors(run))
    run.emission.finish(feed)
    assert cursors(run) == before


def test_a_skipped_stream_not_selected_is_not_reported():
    run = make_run(selected=("customer_tax_ids",))
    feed = planned(run, "customers")
    run.emission.skip(feed, feed.root, ProductNotSetUp("not set up", status=400))
    assert feed.root.skipped and run.summary.stream("customers").skipped == []
    assert run.summary.stream("customer_tax_ids").skipped == [feed.root.skipped]


def test_records_carry_the_time_of_the_write(monkeypatch):
    clock = SimpleNamespace(time=lambda: 1_000_000_000.7, monotonic=time.monotonic)
    monkeypatch.setattr(emission_module, "time", clock)
    run = make_run()
    run.emission.write(planned(run), [("charges", "new", [{"id": "ch_1"}], 1)])
    assert run.out.extracted == ["2001-09-09T01:46:40Z"]


def test_a_skipped_stream_is_logged_with_its_account_and_why(caplog):
    import logging

    run = make_run(selected=("customers", "customer_tax_ids"))
    with caplog.at_level(logging.WARNING, logger="tap_stripe"):
        feed = planned(run, "customers", "acct_1")
        run.emission.skip(feed, feed.root.children[0], ProductNotSetUp("nope", status=400))
        feed = planned(run, "customers")
        run.emission.skip(feed, feed.root, ProductNotSetUp("nope", status=400))
    reason = "product not set up on this account [HTTP 400: nope]"
    assert caplog.messages == [f"Skipping stream customer_tax_ids for account acct_1: {reason}",
                               f"Skipping stream customers: {reason}"]
