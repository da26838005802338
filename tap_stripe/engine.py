"""The run: every selected stream of every account, fetched concurrently, emitted in order.

Work is organised in *feeds*: one per (top-level stream, account). A feed reads its stream
and its child streams (the *family*), and is a queue of *segments* in output order:
created-time windows of the list, then windows of events for changed and deleted objects
(or pages of a full-table list, or one singleton read). Worker threads fetch segments, and
the children of their records, up to `max_workers` requests in flight, shared between feeds
by the rate each needs (`worker_shares`); a worker with nothing to start takes over part of
a window still being paged (`Run._steal`). The main thread alone writes: it emits a
feed's head segment once it and its children are complete, then moves the bookmarks past
it and writes STATE. A bookmark therefore only ever moves past records already written,
whatever was fetched ahead, and a killed run resumes from its last STATE with at most the
in-flight window sent again.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import chain
from typing import Any, Callable

from tap_stripe import events as ev
from tap_stripe import reports
from tap_stripe.children import Children
from tap_stripe.feeds import Feed, Member, Output, Rendered, Segment, SegmentResult
from tap_stripe.client import PermissionDenied, ProductNotSetUp, StripeClient, StripeError
from tap_stripe.pagination import earlier_cursors, get_page, list_pages, next_cursor
from tap_stripe.records import RecordShaper, rfc3339
from tap_stripe.spec import StreamSpec
from tap_stripe.state import State
from tap_stripe.summary import RunSummary
from tap_stripe.windows import created_params, split_if_dense

LOGGER = logging.getLogger("tap_stripe")
EVENTS_RETENTION = 30 * 86400
EVENTS_SAFETY_MARGIN = 86400
STATE_INTERVAL = 1.0
# Fetched-but-not-yet-written response bytes the run may hold, shared between its feeds.
# Records wait as serialised lines (about their JSON size), so memory stays flat whatever
# the volume.
BUFFER_BYTES = 128 << 20
STEAL_MIN_OBJECTS = 300  # a running window's unread part worth a second worker (Run._steal)

class FatalRunError(Exception):
    """The run must stop; `str()` is the one line to show."""


class Termination:
    """A stop asked for by a signal (SIGTERM, SIGINT). The signal handler only sets it; the
    run's main thread stops at its next safe point, between two messages, never inside one."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def request(self, signum: int) -> None:
        self.signum = signum


class RunTerminated(Exception):
    """The run stopped on a signal after writing its last true STATE."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by signal {signum}; the last STATE written is where the next run resumes")
        self.signum = signum


class _Stopped(Exception):
    """A fetch not done because the run is stopping: its segment is never written."""


class Run:
    def __init__(self, *, client: StripeClient, specs: dict[str, StreamSpec],
                 selected: set[str], shapers: dict[str, RecordShaper],
                 emitters: dict[str, Callable[[dict, str, int | None], None]],
                 write_message: Callable[[dict], None], state: State, settings: Any,
                 render: dict[str, Callable[[dict, str, int | None], bytes]],
                 write_line: Callable[[bytes], None] | None,
                 accounts: list[str | None], platform_streams: tuple[set[str], bool], hi: int, now: int,
                 summary: RunSummary,
                 expand: dict[str, list[str]], activate_versions: bool,
                 termination: Termination | None = None):
        self.client = client
        self.specs = specs
        self.selected = selected
        self.shapers = shapers
        self.emitters = emitters
        self.render = render
        self.write_line = write_line
        self.write_message = write_message
        self.state = state
        self.settings = settings
        self.accounts = accounts
        self.platform_streams = platform_streams
        self.hi = hi  # the run's upper bound on `created`: Stripe's clock at the start, or end_date
        self.now = now  # Stripe's clock at the start (the 30-day events guard counts from it)
        self.summary = summary
        self.expand = expand
        self.activate_versions = activate_versions
        self.children = Children(client, shapers, expand, summary)
        self.events = ev.EventContext(client=client, shapers=shapers, children=self.children, summary=summary,
                                      expand=expand, updates_mode=settings.updates_mode, start=settings.start)
        self.report_options = reports.ReportOptions(
            interval=settings.report_interval, columns=settings.report_columns, timezone=settings.report_timezone,
            versions=settings.report_versions, poll_timeout=settings.report_poll_timeout,
            files_url=settings.files_url)
        self.executor = ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="stripe")
        self.feeds: list[Feed] = []
        self._last_state = 0.0
        self._state_dirty = False
        self._stop = threading.Event()
        self.termination = termination or Termination()
        self._paging_lock = threading.Lock()
        self._stealable = Future()  # set when a window starts paging: it can be shared (_steal)

    # ----- planning -------------------------------------------------------------------

    def family(self, spec: StreamSpec) -> Member | None:
        children = [m for m in (self.family(self.specs[c]) for c in spec.children if c in self.specs) if m]
        member = Member(spec, spec.name in self.selected, children=children)
        return member if member.selected or children else None

    def plan(self) -> None:
        for spec in self.specs.values():
            if spec.parent:
                continue
            platform, read_platform = self.platform_streams
            accounts = ([None] if read_platform else []) if spec.name in platform else self.accounts
            for account in accounts:
                root = self.family(spec)
                if root is None:
                    continue
                feed = Feed(root, account, self.hi)
                self._plan_feed(feed)
                self.feeds.append(feed)

    def _plan_feed(self, feed: Feed) -> None:
        spec, account, settings = feed.spec, feed.account, self.settings
        if spec.kind == "singleton":
            feed.segments.append(Segment("singleton"))
            return
        if spec.kind == "report":
            feed.segments.append(Segment("report_plan"))
            return
        if not spec.replication_key:
            feed.version, feed.activate = self.new_version(), True
            feed.segments.append(Segment("pages"))
            return
        # A resync in progress is finished whatever the settings say now: its records carry
        # a table version, and only its end sets the bookmarks an incremental run needs.
        feed.resync = spec.name in settings.full_resync_streams or \
            self.state.get(spec.name, account, "resync") is not None
        events_from = None
        if not feed.resync and spec.event_types:
            events_from = self._plan_events(feed)
            if events_from is not None and events_from - settings.lookback < self.now - EVENTS_RETENTION \
                    + EVENTS_SAFETY_MARGIN:
                LOGGER.warning(
                    "Stream %s%s: its events bookmark (%s) is older than Stripe keeps events (30 days, "
                    "less a day of margin); re-reading the whole list instead, as a new table version, so "
                    "no change is missed and deleted objects can be dropped.",
                    spec.name, f" account {account}" if account else "", rfc3339(events_from))
                self.summary.note(spec.name, "events bookmark older than 30 days: full re-read")
                feed.resync, events_from = True, None
        if feed.resync:
            lo, events_lo = self._plan_resync(feed), feed.deletions_from
        else:
            lo = self._plan_floors(feed)
            feed.events_types = self._event_types(feed)
            # Incremental records carry the version of the stream's last full read, so the next
            # full read's ACTIVATE_VERSION lets targets drop what it no longer finds.
            feed.version = self.state.get(spec.name, account, "version")
            if feed.version is None:
                feed.version = self.new_version()
                self.state.set(spec.name, account, "version", feed.version)
            events_lo = events_from - settings.lookback if events_from is not None else None
        if lo is None or lo < feed.hi:
            feed.segments.append(Segment("window", lo if lo is not None else 0, feed.hi))
        if events_lo is not None and events_lo < feed.hi:
            # Over the same span, one group of types after the other: only the last group's
            # windows move the bookmark, when every group before it was read to the end.
            groups = _type_groups(feed.events_types)
            for i, types in enumerate(groups):
                feed.segments.append(Segment("events", events_lo, feed.hi, types=types, advances=i == len(groups) - 1))

    def _plan_resync(self, feed: Feed) -> int | None:
        """A full re-read as one table version, resumed where a killed one stopped.

        Objects (and child objects) deleted since the last events bookmark are read from their
        `*.deleted` events (targets that ignore table versions, and runs over several accounts,
        which send none, still drop them). A resumed re-read reads every change since it began
        (`started`, the upper bound of the run that began it), for the objects it read before
        it was stopped; one begun longer ago than Stripe keeps events begins again. Its events
        move no bookmark; at its end the events bookmark is this run's upper bound.
        """
        spec, account, start, lookback = feed.spec, feed.account, self.settings.start, self.settings.lookback
        resync = self.state.get(spec.name, account, "resync")
        events_from = self.state.get(spec.name, account, "events")
        oldest = self.now - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN
        feed.activate = True
        if resync:
            # A resync begun by a tap that did not record `started`: the newest time known to be
            # safe (the last events or created bookmark), else the oldest event Stripe keeps.
            feed.started = next((v for v in (resync.get("started"), events_from,
                                             self.state.get(spec.name, account, "created")) if v is not None), oldest)
            if feed.started - lookback < oldest and spec.event_types:
                resync = None  # the changes since it began are no longer all in Stripe's events
        if resync:
            feed.version, lo = resync["version"], resync.get("created", start)
        else:
            feed.version, lo, feed.started = self.new_version(), start, feed.hi
            self.state.set(spec.name, account, "resync",
                           {"version": feed.version, "created": start, "started": feed.started})
        for member in feed.root.walk():
            member.floor = start
        if resync and spec.event_types:
            feed.events_types = self._event_types(feed)
            since = min(feed.started, events_from) if events_from is not None else feed.started
            feed.deletions_from = max(since - lookback, self.now - EVENTS_RETENTION)
        elif events_from is not None and spec.event_types:
            # Deleted objects and children, and children an update removed from an embedded list.
            removals = any(m.spec.embedded_field and not m.spec.event_types for m in feed.root.children)
            deleted = tuple(t for t in (spec.deleted_event, *(m.spec.deleted_event for m in feed.root.children)) if t)
            feed.events_types = self._event_types(feed) if removals else deleted
            feed.deletions_from = max(events_from - lookback, self.now - EVENTS_RETENTION)
            feed.deletions_only = True
        return lo

    def _event_types(self, feed: Feed) -> tuple[str, ...]:
        """The events that change a feed's records: its stream's, and its children's own (a
        child's event re-reads its parent by id)."""
        spec = feed.spec
        children = tuple(t for m in feed.root.children for t in m.spec.event_types) if spec.retrieve_path else ()
        return spec.event_types + children

    def _plan_floors(self, feed: Feed) -> int | None:
        """Each member's floor (records created before it are not emitted) from its own
        `created` bookmark, less the lookback (or `reread_days`); an unselected member's floor is the lowest of the selected
        ones below it. The feed's windows start at the root's floor."""
        account, start, settings = feed.account, self.settings.start, self.settings

        def floor(member: Member) -> tuple[bool, int | None]:
            floors: list[int | None] = []
            if member.selected:
                # Streams whose objects change without events are re-read `reread_days` back.
                lookback = max(settings.lookback, int(settings.reread_days.get(member.spec.name, 0) * 86400))
                cursor = self.state.get(member.spec.name, account, "created")
                floors.append(_max(start, cursor - lookback if cursor is not None else None))
            for child in member.children:
                has_selected, child_floor = floor(child)
                if has_selected:
                    floors.append(child_floor)
            if not floors:
                member.floor = start
            else:
                member.floor = None if any(f is None for f in floors) else min(f for f in floors if f is not None)
            return bool(floors), member.floor

        return floor(feed.root)[1]

    def _plan_events(self, feed: Feed) -> int | None:
        """Where this run's events start, or None when there are none to read.

        First load: events start at this run's upper bound (the list covers what came before),
        and that is saved at once, so a first load resumed later still reads the events since.
        A stream with `created` bookmarks but no events bookmark (a state from before events
        were kept) reads events from its oldest `created` bookmark: the list was read then.
        """
        spec, account = feed.spec, feed.account
        events_from = self.state.get(spec.name, account, "events")
        if events_from is not None:
            return events_from
        created = [c for m in feed.root.walk() if m.selected
                   if (c := self.state.get(m.spec.name, account, "created")) is not None]
        if created:
            self.state.set(spec.name, account, "events", min(created))
            return min(created)
        self.state.set(spec.name, account, "events", feed.hi)
        return None

    def new_version(self) -> int:
        return int(time.time() * 1000)

    # ----- the loop -------------------------------------------------------------------

    def run(self) -> None:
        self.plan()
        active = list(self.feeds)
        try:
            while active:
                if self.termination.signum is not None:
                    self._stop_on_signal(active)
                if self._stealable.done():  # renewed before _schedule looks, so no signal is lost
                    self._stealable = Future()
                self._schedule(active)
                progressed = False
                for feed in list(active):
                    progressed |= self._advance(feed)
                    if not feed.segments:
                        self._finish(feed)
                        active.remove(feed)
                        progressed = True
                self._maybe_write_state()
                self.summary.progress(self.feeds)
                if not progressed and active:
                    # What can change the plan: a fetch ending, a head segment's children
                    # completing (it can then be written), a window starting to page.
                    pending = [s.future for feed in active for s in feed.segments if s.future and not s.future.done()]
                    pending += [f for feed in active if feed.segments for f in feed.segments[0].subs if not f.done()]
                    if pending:
                        wait([*pending, self._stealable], timeout=1.0, return_when=FIRST_COMPLETED)
        except BaseException:
            self._stop.set()
            self.executor.shutdown(wait=False, cancel_futures=True)
            self._write_state(force=True)
            raise
        self.executor.shutdown(wait=True)
        self._write_state(force=True)

    def _stop_on_signal(self, active: list[Feed]) -> None:
        """Start nothing more, write what was fetched and is complete (in order, as ever),
        then stop: the caller writes the last STATE, true to what was written."""
        self._stop.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        for feed in active:
            self._advance(feed)
        LOGGER.warning("Stopping on signal %s: no new requests; what was fetched was written.",
                       self.termination.signum)
        raise RunTerminated(self.termination.signum or 0)

    def _schedule(self, active: list[Feed]) -> None:
        """Start fetches, earliest segments of every feed first.

        Each feed gets the workers its share of the rate budget needs (`worker_shares`) and
        a share of BUFFER_BYTES (fetched but unwritten) in proportion to them, so memory
        stays bounded. The segments before a feed's first fetched one may start whatever its
        buffer holds: they are what the buffered windows wait for. A feed's head segment may
        always start, so every feed keeps moving.
        """
        running = 0
        buffered: dict[int, int] = {}
        in_flight: dict[int, int] = {}
        remaining: dict[int, int] = {}
        first_ready: dict[int, int] = {}
        for feed in active:
            held = busy = pages = 0
            first = len(feed.segments)
            for index, segment in enumerate(feed.segments):
                if segment.ready:
                    held += segment.nbytes
                    first = min(first, index)
                    continue
                pages += feed.expected_pages(segment)
                if segment.future is not None and not segment.future.done():
                    busy += 1
                    held += feed.expected_bytes(segment)
            key = id(feed)
            buffered[key], in_flight[key], remaining[key], first_ready[key] = held, busy, pages, first
            running += busy
        slots = self.settings.max_workers - running
        if slots <= 0:
            return
        limiter = self.client.limiter
        workers = worker_shares(remaining, limiter.endpoint_rate, limiter.global_rate, self.client.latency,
                                self.settings.max_workers)
        total_workers = max(1, sum(workers.values()))
        ahead = max(2, self.settings.max_workers)
        candidates = []
        for feed in active:
            for index, segment in enumerate(feed.segments):
                if index >= ahead:
                    break
                if segment.future is None and not segment.ready:
                    candidates.append((index, feed, segment))
        candidates.sort(key=lambda c: c[0])
        for index, feed, segment in candidates:
            key = id(feed)
            expected = feed.expected_bytes(segment)
            share = BUFFER_BYTES * workers[key] // total_workers
            if index > 0 and (slots <= 0 or in_flight[key] >= workers[key] or
                              (index > first_ready[key] and buffered[key] + expected > share)):
                continue
            buffered[key] += expected
            in_flight[key] += 1
            slots -= 1
            segment.future = self.executor.submit(self._fetch, feed, segment)
        for feed in active:
            key = id(feed)
            if slots > 0 and in_flight[key] < workers[key] and all(s.future or s.ready for s in feed.segments):
                if self._steal(feed):
                    slots -= 1

    def _steal(self, feed: Feed) -> bool:
        """Give an idle worker half of the longest window still being paged.

        Paging a window is a chain of requests, one after the other. When a feed has no
        window left to start, the older half of the unread part of its longest running
        window becomes a window of its own, so the feed's last windows do not leave its
        share of the rate unused while they page to their ends. The running window stops
        at the new boundary; the new one goes before it in output order.
        """
        best, best_left = None, STEAL_MIN_OBJECTS
        for segment in feed.segments:
            if segment.kind != "window" or segment.ready or segment.reached is None or segment.closed:
                continue
            # Objects left, at the density read so far.
            left = segment.read * (segment.reached - segment.lo) / max(1, segment.hi - segment.reached)
            if left >= best_left and segment.reached - segment.lo >= 2:
                best, best_left = segment, left
        if best is None:
            return False
        with self._paging_lock:  # the worker may have moved on since the scan
            if best.closed or best.reached - best.lo < 2:
                return False
            lo, middle = best.lo, best.lo + (best.reached - best.lo) // 2
            best.lo = middle
        stolen = Segment("window", lo, middle, estimate=round(best_left / 2))
        feed.segments.insert(feed.segments.index(best), stolen)
        stolen.future = self.executor.submit(self._fetch, feed, stolen)
        return True

    def _advance(self, feed: Feed) -> bool:
        """Fold in finished fetches; emit the feed's complete head segments."""
        progressed = self._skip_failed_children(feed)
        failure: StripeError | None = None
        for segment in list(feed.segments):
            if segment.future is None or not segment.future.done() or segment.ready or segment.future.cancelled():
                continue
            try:
                result: SegmentResult = segment.future.result()
            except _Stopped:
                continue
            except (PermissionDenied, ProductNotSetUp, reports.ReportFailed) as exc:
                self._skip(feed, feed.root, exc)
                return True
            except StripeError as exc:
                failure = exc  # emit what came before it first, then stop
                break
            progressed = True
            position = feed.segments.index(segment)
            if result.objects:
                feed.object_bytes = (feed.object_bytes + result.nbytes // result.objects) // 2
            if result.tasks is not None:
                _splice(feed.segments, position, [Segment("report", task=task) for task in result.tasks])
                continue
            if result.split is not None:
                # The kept newest objects become a ready tail after the new sub-windows.
                split = result.split
                windows = [Segment(segment.kind, lo, hi, estimate=split.estimate(lo, hi), types=segment.types,
                                   advances=segment.advances) for lo, hi in split.windows]
                tail = Segment(segment.kind, windows[-1].hi if windows else segment.lo, segment.hi,
                               types=segment.types, advances=segment.advances,
                               output=result.output, subs=result.subs, ready=True, nbytes=result.nbytes)
                _splice(feed.segments, position, [*windows, tail])
                continue
            segment.output, segment.subs, segment.ready = result.output, result.subs, True
            segment.nbytes = result.nbytes
            if result.next_cursor:
                feed.segments.insert(position + 1, Segment("pages", cursor=result.next_cursor,
                                                           earlier=result.earlier))
        while feed.segments and feed.segments[0].ready:
            head = feed.segments[0]
            if any(not f.done() or f.cancelled() for f in head.subs):
                break
            output = list(head.output)
            for sub in head.subs:
                try:
                    output.extend(sub.result())
                except (PermissionDenied, ProductNotSetUp) as exc:
                    self._skip(feed, feed.root, exc)  # the parent itself (a refetch) may not be read
                    return True
                except StripeError as exc:
                    raise FatalRunError(_stream_message(feed, exc)) from None
            self._skip_failed_children(feed)  # found by the subs just read: none of it is written
            self._emit_segment(feed, head, output)
            feed.segments.popleft()
            progressed = True
        if failure is not None:
            raise FatalRunError(_stream_message(feed, failure))
        return progressed

    def _skip_failed_children(self, feed: Feed) -> bool:
        """Skip the child streams workers found the key may not read (see `_child_records`)."""
        skipped = False
        while feed.child_failures:
            member, exc = feed.child_failures.pop(0)
            if not member.skipped:
                self._skip(feed, member, exc)
                skipped = True
        return skipped

    def _emit_segment(self, feed: Feed, segment: Segment, output: Rendered) -> None:
        extracted = rfc3339(int(time.time()))
        skipped = {m.spec.name for m in feed.root.walk() if m.skipped}
        write_line, version = self.write_line, feed.version
        for stream, _, payload, _ in output:
            if stream in skipped:
                continue
            if type(payload) is bytes:
                write_line(payload)
            else:
                emit = self.emitters[stream]
                for record in payload:
                    emit(record, extracted, version)
        self.summary.count(output, skipped)
        name, account = feed.name, feed.account
        if segment.kind == "window" and segment.hi is not None:
            feed.emitted_hi = segment.hi
            if output and feed.progress_lo is None:
                feed.progress_lo = segment.lo  # where the data starts, for progress lines
            if feed.resync:
                self.state.set(name, account, "resync", {"version": feed.version, "created": segment.hi,
                                                         "started": feed.started})
            else:
                for member in feed.live_members():
                    self.state.advance(member.spec.name, account, "created", segment.hi)
        elif segment.kind == "report":
            self.state.set(name, account, "report", segment.task.bookmark_after)
            if segment.task.pending_after is not None:  # single-payout reports: [] drops the key
                self.state.set(name, account, "report_pending", list(segment.task.pending_after) or None)
        elif segment.kind == "events" and segment.hi is not None and segment.advances and not feed.resync:
            self.state.advance(name, account, "events", segment.hi)
        self._state_dirty = True

    def _finish(self, feed: Feed) -> None:
        """A feed's every segment was emitted: activate its table version if it has one."""
        if feed.resync:
            self.state.set(feed.name, feed.account, "resync", None)
            for member in feed.live_members():
                self.state.set(member.spec.name, feed.account, "created", feed.hi)
            if not feed.root.skipped:
                self.state.set(feed.name, feed.account, "version", feed.version)
                if feed.spec.event_types:  # every event before the run's bound is reflected now
                    self.state.set(feed.name, feed.account, "events", feed.hi)
        if feed.activate and feed.version is not None and self.activate_versions:
            for member in feed.live_members():
                self.write_message({"type": "ACTIVATE_VERSION", "stream": member.spec.name, "version": feed.version})
        self._state_dirty = True

    def _skip(self, feed: Feed, member: Member, exc: StripeError) -> None:
        reason = _skip_reason(exc)
        if isinstance(exc, PermissionDenied) and self.settings.on_permission_error == "fail":
            raise FatalRunError(_stream_message(feed, exc)) from None
        for skipped in member.walk():
            skipped.skipped = reason
            if skipped.selected:
                self.summary.skip(skipped.spec.name, feed.account, reason)
        LOGGER.warning("Skipping stream %s%s: %s", member.spec.name,
                       f" for account {feed.account}" if feed.account else "", reason)
        if member is feed.root:
            for segment in feed.segments:
                if segment.future:
                    segment.future.cancel()
                for sub in segment.subs:
                    sub.cancel()
            feed.segments.clear()

    def _maybe_write_state(self) -> None:
        if self._state_dirty and time.monotonic() - self._last_state >= STATE_INTERVAL:
            self._write_state()

    def _write_state(self, force: bool = False) -> None:
        if self._state_dirty or force:
            self.write_message({"type": "STATE", "value": self.state.data})
            self._state_dirty = False
            self._last_state = time.monotonic()

    # ----- work done in worker threads -----------------------------------------------

    def _fetch(self, feed: Feed, segment: Segment) -> SegmentResult:
        if self._stop.is_set():
            raise _Stopped
        before = self.client.received()
        result = self._fetch_segment(feed, segment)
        result.nbytes = self.client.received() - before
        if not result.rendered:
            result.output = self._rendered(result.output, feed.version, segment.kind == "events")
        return result

    def _rendered(self, output: Output, version: int | None, from_events: bool = False) -> Rendered:
        """Finish records in this worker, so they wait in memory as compact bytes: one joined
        object per group (orjson's own results keep a large buffer each)."""
        extracted = rfc3339(int(time.time()))
        groups: dict[tuple[str, str], list] = {}
        for stream, record in output:
            kind = "deleted" if record.get("deleted") is True else ("updated" if from_events else "new")
            render = self.render.get(stream)
            groups.setdefault((stream, kind), []).append(render(record, extracted, version) if render else record)
        return [(stream, kind, b"".join(items) if stream in self.render else items, len(items))
                for (stream, kind), items in groups.items()]

    def _submit(self, version: int | None, from_events: bool, fn: Callable[..., Output], *args: Any) -> Future:
        return self.executor.submit(lambda: self._rendered(fn(*args), version, from_events))

    def _fetch_segment(self, feed: Feed, segment: Segment) -> SegmentResult:
        spec = feed.spec
        if segment.kind == "singleton":
            body = self.client.get(spec.path, account=feed.account, stream=spec.name)
            self.summary.page(spec.name)
            rows = body.get(spec.rows_field) or [] if spec.rows_field else [body]
            shaper, now = self.shapers[spec.name], int(time.time())
            return SegmentResult(output=[(spec.name, shaper.shape(row, feed.account, now)) for row in rows])
        if segment.kind == "pages":
            page = get_page(self.client, spec.path, spec.list_query(self.expand), segment.cursor, segment.earlier,
                            account=feed.account, endpoint=spec.path, stream=spec.name, paginated=spec.paginated)
            self.summary.page(spec.name)
            result = self._parents(feed, page.get("data") or [])
            # A full-table list's pages are fetched one after the other, so one set of the
            # feed's cursors catches a list that loops back to any earlier page.
            result.next_cursor = next_cursor(page, feed.cursors, stream=spec.name, path=spec.path,
                                             paginated=spec.paginated)
            result.earlier = earlier_cursors(page, segment.cursor)
            return result
        if segment.kind == "events":
            return self._events_window(feed, segment)
        if segment.kind == "report_plan":
            bookmark = self.state.get(spec.name, feed.account, "report")
            pending = self.state.get(spec.name, feed.account, "report_pending")
            rspec = reports.REPORTS_BY_NAME[spec.name]
            return SegmentResult(tasks=reports.plan_report(self.client, rspec, feed.account, bookmark,
                                                           self.settings.start, self.report_options, pending))
        if segment.kind == "report":
            rows = reports.run_report(self.client, segment.task, self.report_options)
            self.summary.page(spec.name)
            return SegmentResult(output=[(spec.name, row) for row in rows])
        return self._list_window(feed, segment)

    def _list_window(self, feed: Feed, segment: Segment) -> SegmentResult:
        spec = feed.spec
        params = spec.list_query(self.expand) + created_params(segment.lo, segment.hi)
        bodies = list_pages(self.client, spec.path, params, account=feed.account, endpoint=spec.path, stream=spec.name)
        before = self.client.received()
        first = next(bodies)
        objects = first.get("data") or []
        created_field = spec.created_field or "created"
        # Windows are sized from this page's objects, the freshest measure there is.
        object_bytes = (self.client.received() - before) // len(objects) if objects else None
        split = split_if_dense(segment.lo, segment.hi, first, created_field, feed.window_records(object_bytes))
        if split is not None:
            bodies.close()
            self.summary.page(spec.name)
            result = self._parents(feed, list(reversed(split.kept)))
            result.split, result.objects = split, len(objects)
            return result
        # Page through the window. Each page is finished (and serialised) as it arrives, so a
        # window waits in memory as compact lines, then goes out oldest page first. Objects
        # older than `segment.lo` are left out: another worker may have taken that part.
        result = SegmentResult()
        pages: list[Rendered] = []
        for body in chain([first], bodies):
            if self._stop.is_set():
                raise _Stopped
            self.summary.page(spec.name)
            page = body.get("data") or []
            result.objects += len(page)
            with self._paging_lock:
                if page and _created(page[-1], created_field, segment.lo) < segment.lo:
                    page = [obj for obj in page if _created(obj, created_field, segment.lo) >= segment.lo]
                    segment.closed = True
                elif not body.get("has_more"):
                    segment.closed = True
                elif page:
                    if segment.reached is None and not self._stealable.done():
                        self._stealable.set_result(None)  # wake the scheduler
                    segment.reached, segment.read = page[-1].get(created_field), result.objects
            part = self._parents(feed, page[::-1])
            pages.append(self._rendered(part.output, feed.version))
            result.subs += part.subs
            if segment.closed:
                break
        result.output = [item for page in reversed(pages) for item in page]
        result.rendered = True
        return result

    def _parents(self, feed: Feed, objects: list[dict]) -> SegmentResult:
        """Shape parent objects (ascending) and start fetching their children.

        A parent is shaped before its children are submitted, children are shallow copies,
        and shaping and policies copy what they change below a record's top level, so no
        two records (nor threads) change a dict they share.
        """
        result = SegmentResult()
        root = feed.root
        shaper = self.shapers[root.spec.name]
        created_field = root.spec.created_field
        for obj in objects:
            created = obj.get(created_field) if created_field else None
            changed = obj.get("updated") or created
            if root.selected and root.wanted(created):
                result.output.append((root.spec.name, shaper.shape(obj, feed.account)))
            for child in root.children:
                if child.skipped or not child.wanted(created):
                    continue
                if self.children.complete_in(child, obj):  # nothing to fetch: no task, no thread hand-off
                    result.output.extend(self.children.records(feed, child, obj, changed))
                else:
                    # Its own shallow copy: the parent's record may swap protected copies into
                    # its top-level fields while the child task reads them on another thread.
                    result.subs.append(self._submit(feed.version, False, self.children.records, feed, child, dict(obj),
                                                    changed))
        return result

    def _events_window(self, feed: Feed, segment: Segment) -> SegmentResult:
        events_list, split = ev.read_window(self.events, feed, segment)
        result = SegmentResult(split=split)
        for event in ev.newest_per_object(events_list, key=lambda event: ev.event_key(feed, event)):
            result.subs.append(self._submit(feed.version, True, ev.apply_event, self.events, feed, event))
        return result


def worker_shares(remaining: dict[Any, int], endpoint_rate: float, global_rate: float, latency: float,
                  max_workers: int) -> dict[Any, int]:
    """Workers per feed, from the pages each still has to fetch.

    The run cannot end before its largest feed has fetched its pages at the endpoint rate,
    nor before all pages went through at the global rate. Each feed is paced to finish by
    then, at pages ÷ that time requests per second, which needs about rate × latency
    requests in flight, with a margin for jitter and parsing. A feed that sets the run's
    length so gets its endpoint's whole rate, and the smaller ones share what remains of
    the global rate instead of slowing it down. Shares are scaled down to `max_workers`.
    """
    latency = max(0.01, latency)
    finish = max(max(remaining.values(), default=0) / endpoint_rate, sum(remaining.values()) / global_rate, 1e-9)
    workers = {key: math.ceil(pages / finish * latency * 1.5) + 1 for key, pages in remaining.items()}
    total = sum(workers.values())
    if total > max_workers:
        workers = {key: max(1, n * max_workers // total) for key, n in workers.items()}
    return workers


def _type_groups(types: tuple[str, ...], size: int = 20) -> list[tuple[str, ...]]:
    """Event types in groups Stripe accepts in one `types[]` query, the stream's own first."""
    unique = tuple(dict.fromkeys(types))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def _splice(segments: deque, position: int, replacement: list[Segment]) -> None:
    """Replace the segment at `position` by `replacement`, in order."""
    del segments[position]
    for offset, segment in enumerate(replacement):
        segments.insert(position + offset, segment)


def _created(obj: dict, created_field: str, default: int) -> int:
    value = obj.get(created_field)
    return value if isinstance(value, int) else default


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _skip_reason(exc: StripeError) -> str:
    if isinstance(exc, reports.ReportFailed):
        return str(exc)
    message = exc.error.get("message") or str(exc)
    permission = re.search(r"'(rak_[a-z_]+)'", message)
    if isinstance(exc, PermissionDenied):
        return "permission denied" + (f" (needs {permission[1]})" if permission else "") + \
            f" [HTTP {exc.status}, request id {exc.request_id or '-'}]"
    return f"product not set up on this account [HTTP {exc.status}: {' '.join(message.split())[:160]}]"


def _stream_message(feed: Feed, exc: StripeError) -> str:
    text = str(exc)
    return text if text.startswith("stream ") else f"stream {feed.label()}: {text}"
