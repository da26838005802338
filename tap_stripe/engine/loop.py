"""The run: every selected stream of every account, fetched concurrently, emitted in order.

The jobs are in their own modules: the plan (plan.py: state and settings to feeds of
segments), the fetchers (fetch.py: worker threads), the scheduler (scheduler.py: workers,
rates, stealing, memory) and emission (emission.py: ordered output, bookmarks, STATE). The
run's loop here folds finished fetches into their feeds, writes each feed's complete head
segments, and stops at a safe point on a signal or a fatal error.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import wait
from typing import TYPE_CHECKING

from tap_stripe.api.client import StripeClient
from tap_stripe.engine.emission import Emission, Sinks, stream_message
from tap_stripe.engine.feeds import Feed, Rendered, Segment, SegmentKind, SegmentResult
from tap_stripe.engine.fetch import Fetcher, Handoff, RunContext
from tap_stripe.engine.plan import Planner, Scope
from tap_stripe.engine.scheduler import Scheduler
from tap_stripe.engine.state import State
from tap_stripe.errors import (
    FatalRunError,
    PermissionDenied,
    ProductNotSetUp,
    ReportFailed,
    RunTerminated,
    Stopped,
    StripeError,
    Termination,
)
from tap_stripe.output.summary import RunSummary

if TYPE_CHECKING:
    from tap_stripe.settings import Settings

LOGGER = logging.getLogger("tap_stripe")

__all__ = ["FatalRunError", "Run", "RunTerminated", "Scope", "Sinks", "Termination"]


class Run:
    def __init__(self, *, client: StripeClient, scope: Scope, sinks: Sinks, state: State, settings: Settings,
                 summary: RunSummary, termination: Termination | None = None):
        self.state = state
        self.summary = summary
        self.termination = termination or Termination()
        self.stop = threading.Event()
        self.planner = Planner(scope, state, settings, summary)
        self.scheduler = Scheduler(client, settings.max_workers)
        self.fetcher = Fetcher(RunContext(client, settings, state, summary), scope, sinks.render,
                               Handoff(self.scheduler.submit, self.scheduler.paging, self.stop))
        self.emission = Emission(sinks, state, summary, settings.on_permission_error)
        self.feeds: list[Feed] = []

    def run(self) -> None:
        self.feeds = self.planner.plan()
        active = list(self.feeds)
        executor = self.scheduler.executor
        try:
            while active:
                if self.termination.signum is not None:
                    self._stop_on_signal(active)
                wake = self.scheduler.paging.renew()  # before the scheduler looks, so no wake-up is lost
                self.scheduler.schedule(active, self.fetcher.fetch)
                progressed = False
                for feed in list(active):
                    progressed |= self.advance(feed)
                    if not feed.segments:
                        self.emission.finish(feed)
                        active.remove(feed)
                        progressed = True
                self.emission.maybe_write_state()
                self.summary.progress(self.feeds)
                if not progressed and active and self.scheduler.running:
                    # What can change the plan: a task ending (a fetch, a head segment's
                    # children: it can then be written), a window starting to page or with a
                    # page to write. Each sets `wake`.
                    wait([wake], timeout=1.0)
        except BaseException:
            self.stop.set()
            executor.shutdown(wait=False, cancel_futures=True)
            self.emission.write_state(force=True)
            raise
        executor.shutdown(wait=True)
        self.emission.write_state(force=True)

    def _stop_on_signal(self, active: list[Feed]) -> None:
        """Start nothing more, write what was fetched and is complete (in order, as ever),
        then stop: the caller writes the last STATE, true to what was written."""
        self.stop.set()
        self.scheduler.executor.shutdown(wait=False, cancel_futures=True)
        for feed in active:
            self.advance(feed)
        LOGGER.warning("Stopping on signal %s: no new requests; what was fetched was written.",
                       self.termination.signum)
        raise RunTerminated(self.termination.signum or 0)

    def advance(self, feed: Feed) -> bool:
        """Fold in finished fetches; emit the feed's complete head segments."""
        progressed = self.skip_failed_children(feed)
        failure: StripeError | None = None
        for segment in list(feed.segments):
            if segment.future is None or not segment.future.done() or segment.ready or segment.future.cancelled():
                continue
            try:
                result: SegmentResult = segment.future.result()
            except Stopped:
                continue
            except (PermissionDenied, ProductNotSetUp, ReportFailed) as exc:
                self.emission.skip(feed, feed.root, exc)
                return True
            except StripeError as exc:
                failure = exc  # emit what came before it first, then stop
                break
            progressed = True
            position = feed.segments.index(segment)
            if result.objects:
                feed.object_bytes = (feed.object_bytes + result.nbytes // result.objects) // 2
            if result.tasks is not None:
                _splice(feed.segments, position, [Segment(SegmentKind.REPORT, task=task) for task in result.tasks])
                continue
            if result.split is not None:
                _splice(feed.segments, position, _split_window(segment, result))
                continue
            segment.output, segment.subs, segment.ready = result.output, result.subs, True
            segment.pending = result.pending
            # A window's pages went out as they came.
            segment.nbytes = 0 if segment.kind == SegmentKind.WINDOW else result.nbytes
            if result.next_cursor:
                feed.segments.insert(position + 1, Segment(SegmentKind.PAGES, cursor=result.next_cursor,
                                                           earlier=result.earlier))
        written = self._write_windows(feed)
        if written is None:
            return True
        progressed |= written
        while feed.segments and feed.segments[0].ready:
            head = feed.segments[0]
            if head.parts or any(not f.done() or f.cancelled() for f in head.subs):
                break
            output = self._complete(feed, head.output, head.subs)
            if output is None:
                return True
            self.emission.emit_segment(feed, head, output)
            feed.segments.popleft()
            self.emission.maybe_write_state()
            progressed = True
        if failure is not None:
            raise FatalRunError(stream_message(feed, failure))
        return progressed

    def _write_windows(self, feed: Feed) -> bool | None:
        """Write the created windows' records as they arrive, in whatever order the windows
        finish: the feed's windows come before anything else it reads (events, which must
        follow every window), and its bookmarks still move only past the windows written
        to their end, in order (`emit_segment`). A window waits in memory as a page at most.
        None when the feed was skipped."""
        wrote = False
        for segment in feed.segments:
            if segment.kind != SegmentKind.WINDOW:
                break
            while segment.parts and all(f.done() and not f.cancelled() for f in segment.parts[0].subs):
                with self.scheduler.paging.lock:
                    part = segment.parts.pop(0)
                output = self._complete(feed, part.rendered, part.subs)
                if output is None:
                    return None
                self.emission.write(feed, output)
                segment.written = wrote = True
                # Pages come newest first: the window is written from `written_from` up.
                segment.unsettled |= part.pending is not None
                if not segment.unsettled and segment.hi is not None:
                    self.emission.record_done(feed, part.written_from, segment.hi)
                self.emission.maybe_write_state()
            if segment.ready and (segment.output or segment.subs) and \
                    all(f.done() and not f.cancelled() for f in segment.subs):
                output = self._complete(feed, segment.output, segment.subs)
                if output is None:
                    return None
                self.emission.write(feed, output)
                segment.output, segment.subs, segment.nbytes, segment.written = [], [], 0, True
                wrote = True
            if segment.ready and not segment.recorded and not segment.parts and not segment.output \
                    and not segment.subs and segment is not feed.segments[0]:
                segment.recorded = True
                if segment.pending is None and not segment.unsettled and segment.lo is not None \
                        and segment.hi is not None:
                    self.emission.record_done(feed, segment.lo, segment.hi)
        return wrote

    def _complete(self, feed: Feed, rendered: Rendered, subs: list) -> Rendered | None:
        """Records with their children's (finished) fetches; None when the feed was skipped."""
        output = list(rendered)
        for sub in subs:
            try:
                output.extend(sub.result())
            except (PermissionDenied, ProductNotSetUp) as exc:
                self.emission.skip(feed, feed.root, exc)  # the parent itself (a refetch) may not be read
                return None
            except StripeError as exc:
                raise FatalRunError(stream_message(feed, exc)) from None
        self.skip_failed_children(feed)  # found by the subs just read: none of it is written
        return output

    def skip_failed_children(self, feed: Feed) -> bool:
        """Skip the child streams workers found the key may not read (see `_child_records`)."""
        skipped = False
        while feed.child_failures:
            member, exc = feed.child_failures.pop(0)
            if not member.skipped:
                self.emission.skip(feed, member, exc)
                skipped = True
        return skipped


def _splice(segments: deque, position: int, replacement: list[Segment]) -> None:
    """Replace the segment at `position` by `replacement`, in order."""
    del segments[position]
    for offset, segment in enumerate(replacement):
        segments.insert(position + offset, segment)


def _split_window(segment: Segment, result: SegmentResult) -> list[Segment]:
    """A window that was split (`result.split`): its new sub-windows, then the kept newest
    objects as a ready tail after them."""
    split = result.split
    assert split is not None  # the caller splits only a result that says how
    windows = [Segment(segment.kind, lo, hi, estimate=split.estimate(lo, hi),
                       fanout=split.fanout_of(lo, hi), types=segment.types, advances=segment.advances)
               for lo, hi in split.windows]
    tail = Segment(segment.kind, windows[-1].hi if windows else segment.lo, segment.hi,
                   types=segment.types, advances=segment.advances, pending=result.pending,
                   output=result.output, subs=result.subs, ready=True, nbytes=result.nbytes)
    return [*windows, tail]
