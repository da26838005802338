"""The run's loop, in-process (`Run.advance`, `_write_windows`, `_complete`,
`skip_failed_children`, `_stop_on_signal`): what a feed writes and when, from hand-made
fetch results. Nothing runs on a worker: every future is finished before the loop looks."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from test_engine_bookmarks import DAY, HI, NOW, bookmark, cursors, make_run, planned

from tap_stripe.api.client import PermissionDenied, ProductNotSetUp, StripeError
from tap_stripe.engine.feeds import Part, Segment, SegmentResult
from tap_stripe.errors import FatalRunError, ReportFailed, RunTerminated, Stopped


def done(value=None, exc=None) -> Future:
    future: Future = Future()
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(value)
    return future


def lines(*names):
    return [(name, "new", f"{name}\n".encode(), 1) for name in names]


class FailingChild(Future):
    """A child fetch that found, as it finished, that the key may not read its stream:
    it records the failure on the feed (as `Children.records` does) and returns nothing."""

    def __init__(self, feed, member):
        super().__init__()
        self.feed, self.member = feed, member
        self.set_result([])

    def result(self, timeout=None):
        if not any(m is self.member for m, _ in self.feed.child_failures):
            self.feed.child_failures.append((self.member, PermissionDenied("denied", status=403)))
        return super().result(timeout)


def tax_ids_of(feed):
    return next(m for m in feed.root.children if m.spec.name == "customer_tax_ids")


def window_feed(state=None, **settings):
    run = make_run(state, **settings)
    return run, planned(run)


# --------------------------------------------------------------------------- _write_windows
def test_pages_of_windows_are_written_as_they_arrive_and_their_span_recorded_as_done():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    first, _events = feed.segments
    second = Segment("window", NOW - 5 * DAY, HI)
    first.hi = NOW - 5 * DAY
    feed.segments.insert(1, second)
    # The second window's newest page arrives first: it is written, and its span is done.
    second.parts.append(Part(lines("charges"), [], NOW - 2 * DAY))
    assert run.advance(feed) is True
    assert run.out.lines == [b"charges\n"]
    assert second.written and not first.written
    assert cursors(run)["done"] == [[NOW - 2 * DAY, HI]]
    assert cursors(run)["created"] == NOW - 10 * DAY  # the bookmark waits for the first window
    # A page whose children are still being fetched waits.
    pending = Future()
    second.parts.append(Part(lines("charges"), [pending], NOW - 4 * DAY))
    assert run.advance(feed) is False
    assert run.out.lines == [b"charges\n"] and len(second.parts) == 1
    pending.set_result([])
    assert run.advance(feed) is True
    assert run.out.lines == [b"charges\n"] * 2
    assert cursors(run)["done"] == [[NOW - 4 * DAY, HI]]


def test_a_page_of_objects_that_may_still_change_records_no_done_span():
    run = make_run(selected=("balance_transactions",))
    feed = planned(run, "balance_transactions")
    window = feed.segments[0]
    feed.segments.appendleft(Segment("window", 0, 0))  # the window is not the head
    window.parts.append(Part(lines("balance_transactions"), [], NOW - 2 * DAY, pending=NOW - 3 * DAY))
    window.parts.append(Part(lines("balance_transactions"), [], NOW - 4 * DAY))
    run.advance(feed)
    assert run.out.lines == [b"balance_transactions\n"] * 2
    assert window.unsettled
    assert "done" not in (cursors(run, "balance_transactions") or {})


def test_a_finished_window_behind_the_head_is_recorded_as_done_once():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    head = feed.segments[0]
    head.hi = NOW - 5 * DAY
    later = Segment("window", NOW - 5 * DAY, HI, ready=True)
    feed.segments.insert(1, later)
    run.advance(feed)
    assert later.recorded and cursors(run)["done"] == [[NOW - 5 * DAY, HI]]
    run.state.set("charges", None, "done", None)
    run.advance(feed)
    assert "done" not in cursors(run)  # recorded once
    # One holding objects that may still change, or without bounds, is not recorded.
    for window in (Segment("window", NOW - 5 * DAY, HI, ready=True, pending=NOW - 4 * DAY),
                   Segment("window", NOW - 5 * DAY, HI, ready=True, unsettled=True),
                   Segment("window", None, HI, ready=True), Segment("window", NOW - 5 * DAY, None, ready=True)):
        run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
        feed.segments[0].hi = NOW - 5 * DAY
        feed.segments.insert(1, window)
        run.advance(feed)
        assert window.recorded and "done" not in cursors(run)


def test_a_ready_window_s_output_is_written_before_it_reaches_the_head():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    feed.segments[0].hi = NOW - 5 * DAY
    child = Future()
    later = Segment("window", NOW - 5 * DAY, HI, ready=True, output=lines("charges"), subs=[child], nbytes=50)
    feed.segments.insert(1, later)
    run.advance(feed)
    assert run.out.lines == [] and later.output  # its children are still being fetched
    child.set_result(lines("charges"))
    run.advance(feed)
    assert run.out.lines == [b"charges\n"] * 2
    assert (later.output, later.subs, later.nbytes, later.written) == ([], [], 0, True)
    assert later.recorded and cursors(run)["done"] == [[NOW - 5 * DAY, HI]]
    cancelled = Future()
    cancelled.cancel()
    stuck = Segment("window", NOW - 5 * DAY, HI, ready=True, output=lines("charges"), subs=[cancelled])
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    feed.segments[0].hi = NOW - 5 * DAY
    feed.segments.insert(1, stuck)
    run.advance(feed)
    assert run.out.lines == [] and not stuck.recorded


def test_nothing_behind_a_segment_that_is_not_a_window_is_written_early():
    """A feed's records go out in its segments' order: a window's pages are written as they
    arrive only while every segment before it is a window (events follow every window; an
    update written ahead of a window could be overwritten by the window's older copy)."""
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, _events = feed.segments
    window.hi = NOW - 5 * DAY
    feed.segments.append(Segment("window", NOW - 5 * DAY, HI))  # not planned so, but must wait
    behind = feed.segments[2]
    behind.parts.append(Part(lines("charges"), [], NOW - 4 * DAY))
    behind.ready, behind.output = True, lines("charges")
    run.advance(feed)
    assert run.out.lines == [] and len(behind.parts) == 1 and not behind.written and not behind.recorded
    assert "done" not in cursors(run)


# --------------------------------------------------------------------------- _complete
def test_a_child_stream_found_unreadable_while_its_page_is_completed_is_skipped_before_writing():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    window = feed.segments[0]
    tax_ids = tax_ids_of(feed)
    window.ready, window.output = True, lines("customers")
    window.subs = [done(lines("customer_tax_ids")), FailingChild(feed, tax_ids)]
    assert run.advance(feed) is True
    assert run.out.lines == [b"customers\n"]
    assert tax_ids.skipped and not feed.child_failures
    assert cursors(run, "customers")["created"] == HI
    assert "created" not in cursors(run, "customer_tax_ids")


def test_a_child_stream_found_unreadable_in_a_page_is_skipped_before_the_page_is_written():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    window = feed.segments[0]
    tax_ids = tax_ids_of(feed)
    window.parts.append(Part(lines("customers"), [done(lines("customer_tax_ids")), FailingChild(feed, tax_ids)],
                             NOW - DAY))
    run.advance(feed)
    assert run.out.lines == [b"customers\n"] and tax_ids.skipped


def test_a_refused_child_fetch_skips_the_whole_feed_and_another_error_stops_the_run():
    for error in (PermissionDenied("denied", status=403), ProductNotSetUp("no issuing", status=400)):
        run = make_run(selected=("customers", "customer_tax_ids"))
        feed = planned(run, "customers")
        window = feed.segments[0]
        window.ready, window.output, window.subs = True, lines("customers"), [done(exc=error)]
        assert run.advance(feed) is True
        assert run.out.lines == [] and feed.root.skipped and not feed.segments
        run = make_run(selected=("customers", "customer_tax_ids"))
        feed = planned(run, "customers")
        window = feed.segments[0]
        window.parts.append(Part(lines("customers"), [done(exc=error)], NOW - DAY))
        assert run.advance(feed) is True
        assert run.out.lines == [] and feed.root.skipped
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    window = feed.segments[0]
    window.ready, window.output, window.subs = True, lines("customers"), [done(exc=StripeError("boom", status=500))]
    with pytest.raises(FatalRunError, match="stream customers: boom"):
        run.advance(feed)
    assert run.out.lines == []


def test_skip_failed_children_skips_each_member_once_and_says_whether_it_did():
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    tax_ids = tax_ids_of(feed)
    assert run.skip_failed_children(feed) is False
    feed.child_failures = [(tax_ids, PermissionDenied("a", status=403)), (tax_ids, PermissionDenied("b", status=403))]
    assert run.skip_failed_children(feed) is True
    assert feed.child_failures == [] and tax_ids.skipped.startswith("permission denied")
    assert run.summary.stream("customer_tax_ids").skipped
    feed.child_failures = [(tax_ids, PermissionDenied("c", status=403))]
    assert run.skip_failed_children(feed) is False  # already skipped
    assert feed.child_failures == []
    # Found before anything else is looked at: a child skipped is progress.
    run = make_run(selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers")
    feed.child_failures = [(tax_ids_of(feed), PermissionDenied("a", status=403))]
    assert run.advance(feed) is True


# --------------------------------------------------------------------------- advance
def test_the_head_is_emitted_once_complete_and_the_bookmark_follows():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    assert run.advance(feed) is False  # nothing fetched
    window.future = done(SegmentResult(output=lines("charges"), subs=[], nbytes=300, objects=3))
    events.future = Future()
    assert run.advance(feed) is True
    assert run.out.lines == [b"charges\n"]
    assert cursors(run)["created"] == HI and cursors(run)["events"] == NOW - 2 * DAY
    assert list(feed.segments) == [events]
    assert feed.object_bytes == (4096 + 100) // 2
    events.future.set_result(SegmentResult(output=lines("charges"), nbytes=10))
    assert run.advance(feed) is True
    assert cursors(run)["events"] == HI and not feed.segments
    assert events.nbytes == 10


def test_a_head_waits_for_its_parts_and_its_children():
    run, feed = window_feed()
    window = feed.segments[0]
    child = Future()
    window.future = done(SegmentResult(output=lines("charges"), subs=[child]))
    assert run.advance(feed) is True
    assert window.ready and window.output and run.out.lines == []
    assert "created" not in cursors(run)
    child.set_result(lines("charges"))
    run.advance(feed)
    assert run.out.lines == [b"charges\n"] * 2 and not feed.segments
    # a part left to write holds the head back
    run, feed = window_feed()
    window = feed.segments[0]
    waiting = Future()
    window.parts.append(Part(lines("charges"), [waiting], NOW - DAY))
    window.future = done(SegmentResult(rendered=True))
    run.advance(feed)
    assert list(feed.segments) == [window] and "created" not in cursors(run)
    # a cancelled child fetch never completes the head
    run, feed = window_feed()
    window = feed.segments[0]
    cancelled = Future()
    cancelled.cancel()
    window.future = done(SegmentResult(output=lines("charges"), subs=[cancelled]))
    run.advance(feed)
    assert list(feed.segments) == [window] and run.out.lines == []


def test_fetches_not_done_cancelled_stopped_or_folded_in_already_are_left():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    window.future = done(exc=Stopped())
    assert run.advance(feed) is False and list(feed.segments) == [window, events]
    cancelled = Future()
    cancelled.cancel()
    window.future = cancelled
    assert run.advance(feed) is False
    window.future = done(SegmentResult(output=lines("charges")))
    window.ready = True  # folded in before: its result is not taken twice
    window.output = []
    run.advance(feed)
    assert run.out.lines == []


def test_a_permission_error_skips_the_feed_and_another_error_stops_the_run_after_what_came_before():
    for error in (PermissionDenied("denied", status=403), ProductNotSetUp("no", status=400),
                  ReportFailed("failed", status=None)):
        run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
        window, events = feed.segments
        window.future = done(exc=error)
        assert run.advance(feed) is True
        assert feed.root.skipped and not feed.segments and run.out.lines == []
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    window.future = done(SegmentResult(output=lines("charges")))
    events.future = done(exc=StripeError("events broke", status=500))
    with pytest.raises(FatalRunError, match="stream charges: events broke"):
        run.advance(feed)
    assert run.out.lines == [b"charges\n"] and cursors(run)["created"] == HI
    assert cursors(run)["events"] == NOW - 2 * DAY


def test_a_split_becomes_its_sub_windows_then_a_ready_tail():
    from tap_stripe.engine.windows import Split

    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    lo = window.lo
    split = Split(kept=[], windows=[(lo, lo + 100), (lo + 100, lo + 200)], density=0.5)
    child = Future()
    window.future = done(SegmentResult(output=lines("charges"), subs=[child], split=split, pending=lo + 250,
                                       nbytes=500, objects=5))
    assert run.advance(feed) is True
    kinds = [(s.kind, s.lo, s.hi, s.ready) for s in feed.segments]
    assert kinds == [("window", lo, lo + 100, False), ("window", lo + 100, lo + 200, False),
                     ("window", lo + 200, HI, True), ("events", NOW - 2 * DAY, HI, False)]
    tail = feed.segments[2]
    assert tail.pending == lo + 250 and tail.nbytes == 500 and tail.subs == [child]
    assert tail.output == lines("charges") and run.out.lines == []
    child.set_result([])
    run.advance(feed)
    assert run.out.lines == [b"charges\n"] and tail.written and tail.nbytes == 0
    assert feed.segments[0].estimate == split.estimate(lo, lo + 100)
    assert feed.object_bytes == (4096 + 100) // 2
    # an events window keeps its types and whether it moves the bookmark
    events.types, events.advances = ("charge.updated",), False
    split = Split(kept=[])
    events.future = done(SegmentResult(split=split))
    run.advance(feed)
    tail = feed.segments[-1]
    assert (tail.kind, tail.lo, tail.hi, tail.types, tail.advances, tail.ready) == \
        ("events", NOW - 2 * DAY, HI, ("charge.updated",), False, True)


def test_report_runs_and_further_pages_are_spliced_in_order():
    run = make_run(selected=("report_balance_summary", "country_specs"))
    feed = planned(run, "report_balance_summary")
    tasks = [object(), object()]
    feed.segments[0].future = done(SegmentResult(tasks=tasks))
    run.advance(feed)
    assert [(s.kind, s.task) for s in feed.segments] == [("report", tasks[0]), ("report", tasks[1])]
    feed = planned(run, "country_specs")
    page = feed.segments[0]
    page.future = done(SegmentResult(output=lines("country_specs"), next_cursor="cs_9", earlier=["cs_8"], nbytes=70))
    run.advance(feed)
    assert [(s.kind, s.cursor, s.earlier) for s in feed.segments] == [("pages", "cs_9", ["cs_8"])]
    assert run.out.lines == [b"country_specs\n"]
    assert feed.object_bytes == 4096  # no objects counted: the size estimate is left


def test_a_window_s_pages_went_out_as_they_came_so_it_holds_no_bytes():
    run, feed = window_feed()
    window = feed.segments[0]
    child = Future()
    window.future = done(SegmentResult(output=[], subs=[child], nbytes=999, pending=NOW - DAY))
    run.advance(feed)
    assert window.nbytes == 0 and window.pending == NOW - DAY


# --------------------------------------------------------------------------- signals
def test_a_signal_stops_the_run_after_writing_what_was_fetched():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, _events = feed.segments
    window.future = done(SegmentResult(output=lines("charges")))
    shutdowns = []
    run.scheduler.executor.shutdown = lambda **kw: shutdowns.append(kw)
    run.termination.signum = 15
    with pytest.raises(RunTerminated) as raised:
        run._stop_on_signal([feed])
    assert raised.value.signum == 15
    assert run.stop.is_set() and shutdowns == [{"wait": False, "cancel_futures": True}]
    assert run.out.lines == [b"charges\n"] and cursors(run)["created"] == HI
    run.termination.signum = None
    with pytest.raises(RunTerminated) as raised:
        run._stop_on_signal([])
    assert raised.value.signum == 0


def test_a_ready_window_without_children_is_written_early_and_recorded():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    feed.segments[0].hi = NOW - 5 * DAY
    later = Segment("window", NOW - 5 * DAY, HI, ready=True, output=lines("charges"))
    feed.segments.insert(1, later)
    assert run.advance(feed) is True
    assert run.out.lines == [b"charges\n"] and later.written and later.recorded
    assert cursors(run)["done"] == [[NOW - 5 * DAY, HI]]


def test_writing_a_later_window_early_is_progress():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - DAY, version=7))
    feed.segments[0].hi = NOW - 5 * DAY
    child = Future()
    later = Segment("window", NOW - 5 * DAY, HI, ready=True, output=lines("charges"), subs=[child], recorded=True)
    feed.segments.insert(1, later)
    assert run.advance(feed) is False
    child.set_result([])
    assert run.advance(feed) is True and run.out.lines == [b"charges\n"]


def test_a_stopped_fetch_leaves_the_others_to_be_folded_in():
    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    window.future = done(exc=Stopped())
    events.future = done(SegmentResult(output=lines("charges")))
    run.advance(feed)
    assert events.ready and not window.ready


def test_a_split_leaves_the_others_to_be_folded_in_and_its_sub_windows_keep_what_they_read():
    from tap_stripe.engine.windows import Split

    run, feed = window_feed(bookmark(created=NOW - 10 * DAY, events=NOW - 2 * DAY, version=7))
    window, events = feed.segments
    lo = window.lo
    split = Split(kept=[], windows=[(lo, lo + 100), (lo + 100, lo + 200), (lo + 200, lo + 300)], density=0.5,
                  rest=(lo, lo + 100), fanout=4)
    window.future = done(SegmentResult(split=split))
    events.types, events.advances = ("charge.updated",), False
    events.future = Future()
    events_result = SegmentResult(output=lines("charges"), subs=[Future()])
    events.future.set_result(events_result)
    run.advance(feed)
    assert [(s.lo, s.hi, s.fanout, s.estimate) for s in list(feed.segments)[:4]] == [
        (lo, lo + 100, 4, None), (lo + 100, lo + 200, None, 50), (lo + 200, lo + 300, None, 50), (lo + 300, HI, None,
                                                                                                 None)]
    assert events.ready and events.output == lines("charges")
    split = Split(kept=[], windows=[(NOW - 2 * DAY, NOW - DAY), (NOW - DAY, NOW - 100)], density=0.5)
    events.ready, events.future = False, done(SegmentResult(split=split))
    run.advance(feed)
    subs = [s for s in feed.segments if s.kind == "events"]
    assert [(s.lo, s.hi, s.types, s.advances) for s in subs] == [
        (NOW - 2 * DAY, NOW - DAY, ("charge.updated",), False), (NOW - DAY, NOW - 100, ("charge.updated",), False),
        (NOW - 100, HI, ("charge.updated",), False)]


def test_the_size_of_a_feed_s_objects_stays_a_whole_number():
    run, feed = window_feed()
    window = feed.segments[0]
    window.future = done(SegmentResult(output=[], subs=[Future()], nbytes=303, objects=3))
    run.advance(feed)
    assert feed.object_bytes == (4096 + 101) // 2 and isinstance(feed.object_bytes, int)


def test_a_head_whose_children_show_the_feed_unreadable_skips_it():
    run, feed = window_feed(bookmark(created=HI, events=NOW - 2 * DAY, version=7))
    (events,) = feed.segments
    events.future = done(SegmentResult(output=lines("charges"), subs=[done(exc=PermissionDenied("no", status=403))]))
    assert run.advance(feed) is True
    assert feed.root.skipped and run.out.lines == [] and cursors(run)["events"] == NOW - 2 * DAY


def test_the_next_page_of_a_full_table_comes_right_after_the_page_that_found_it():
    run = make_run(selected=("country_specs",))
    feed = planned(run, "country_specs")
    page = feed.segments[0]
    tail = Segment("events")
    feed.segments.append(tail)
    page.future = done(SegmentResult(output=lines("country_specs"), subs=[Future()], next_cursor="cs_9"))
    run.advance(feed)
    assert [(s.kind, s.cursor) for s in feed.segments] == [("pages", None), ("pages", "cs_9"), ("events", None)]


def test_a_signal_is_logged_with_its_number(caplog):
    import logging

    run, feed = window_feed()
    run.scheduler.executor.shutdown = lambda **kw: None
    run.termination.signum = 2
    with caplog.at_level(logging.WARNING, logger="tap_stripe"), pytest.raises(RunTerminated):
        run._stop_on_signal([feed])
    assert caplog.messages == ["Stopping on signal 2: no new requests; what was fetched was written."]
