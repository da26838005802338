"""The work done in worker threads: fetching a segment (a created-time window of a list,
pages of a full table, a window of events, a singleton, a report), shaping its records and
starting the fetches of their children. What a worker returns is finished RECORD lines, so a
fetched window waits in memory as compact bytes until the main thread writes it in order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any, TypeVar

from tap_stripe import reports
from tap_stripe.api.client import StripeClient
from tap_stripe.api.pagination import earlier_cursors, get_page, list_pages, next_cursor
from tap_stripe.engine import events as ev
from tap_stripe.engine.children import Children
from tap_stripe.engine.feeds import Feed, GroupKind, Output, Paging, Part, Rendered, Segment, SegmentKind, SegmentResult
from tap_stripe.engine.plan import Scope
from tap_stripe.engine.state import State
from tap_stripe.engine.windows import created_params, split_if_dense
from tap_stripe.errors import PermissionDenied, Stopped, StripeError
from tap_stripe.output.records import rfc3339
from tap_stripe.output.summary import RunSummary

if TYPE_CHECKING:
    from tap_stripe.settings import Settings

Render = Callable[[dict, str, int | None], bytes]
_T = TypeVar("_T")
LOGGER = logging.getLogger("tap_stripe")


@dataclass(frozen=True)
class RunContext:
    """What every fetch of a run shares: the client, the settings, the state (read for a
    report's bookmark) and the summary (pages counted)."""

    client: StripeClient
    settings: Settings
    state: State
    summary: RunSummary


@dataclass(frozen=True)
class Handoff:
    """How a worker hands its work on: child and event tasks to the scheduler's pool
    (`submit_task`), a window's pages to the main loop (`paging`: its lock and wake-up), and
    whether the run is stopping (`stop`)."""

    submit_task: Callable[..., Future]
    paging: Paging
    stop: threading.Event


class Fetcher:
    """Fetches segments for the scheduler; child and event tasks run through `handoff`.
    `render`: the streams whose records are finished into RECORD lines in the worker."""

    def __init__(self, run: RunContext, scope: Scope, render: Mapping[str, Render], handoff: Handoff):
        self.client = run.client
        self.scope = scope
        self.settings = settings = run.settings
        self.state = run.state
        self.summary = summary = run.summary
        self.render = render
        self.expand = settings.expand
        self.submit_task = handoff.submit_task
        self.paging = handoff.paging
        self.stop = handoff.stop
        client = self.client
        self.children = Children(client, scope.shapers, self.expand, summary)
        self.events = ev.EventContext(client=client, shapers=scope.shapers, children=self.children, summary=summary,
                                      expand=self.expand, updates_mode=settings.updates_mode, start=settings.start)
        self.report_options = reports.ReportOptions(
            interval=settings.report_interval, columns=settings.report_columns, timezone=settings.report_timezone,
            versions=settings.report_versions, poll_timeout=settings.report_poll_timeout,
            files_url=settings.files_url)

    def fetch(self, feed: Feed, segment: Segment) -> SegmentResult:
        if self.stop.is_set():
            raise Stopped
        before = self.client.received()
        result = self._segment(feed, segment)
        result.nbytes = self.client.received() - before
        if not result.rendered:
            result.output = self.rendered(result.output, feed.version, segment.kind == SegmentKind.EVENTS)
        return result

    def rendered(self, output: Output, version: int | None, from_events: bool = False) -> Rendered:
        """Finish records in this worker, so they wait in memory as compact bytes: one joined
        object per group (orjson's own results keep a large buffer each)."""
        extracted = rfc3339(int(time.time()))
        if self.scope.post_process:  # some stream's class has its own post_process
            output = self.post_processed(output)
        fresh = GroupKind.UPDATED if from_events else GroupKind.NEW
        groups: dict[tuple[str, GroupKind], list] = {}
        admit = self.scope.admit
        needs: dict[tuple[str, GroupKind], int] = {}
        for stream, record in output:
            kind = GroupKind.DELETED if record.get("deleted") is True else fresh
            if admit is not None:
                # New fields: the schema revision this record needs. Admitted before it is
                # rendered, so `render` (read after) is that of a schema with its fields.
                need = admit(stream, record)
                if need > needs.get((stream, kind), 0):
                    needs[(stream, kind)] = need
            render = self.render.get(stream)
            groups.setdefault((stream, kind), []).append(render(record, extracted, version) if render else record)
        rendered: Rendered = []
        for (stream, kind), items in groups.items():
            if (stream, kind) in needs:  # its SCHEMA goes out before the group (emission)
                rendered.append((stream, GroupKind.SCHEMA, needs[(stream, kind)], 0))
            rendered.append((stream, kind, b"".join(items) if stream in self.render else items, len(items)))
        return rendered

    def post_processed(self, output: Output) -> Output:
        """`output` with each record of a stream that has a `post_process` hook replaced by what
        the hook returns, or left out when it returns None; deletion records are kept as they are."""
        hooks = self.scope.post_process
        kept: Output = []
        for stream, record in output:
            if stream in hooks and record.get("deleted") is not True:
                processed = hooks[stream](record, None)
                if processed is None:
                    continue
                record = processed
            kept.append((stream, record))
        return kept

    def submit(self, version: int | None, from_events: bool, fn: Callable[..., Output], *args: Any) -> Future:
        return self.submit_task(lambda: self.rendered(fn(*args), version, from_events))

    def _segment(self, feed: Feed, segment: Segment) -> SegmentResult:
        spec = feed.spec
        if segment.kind == SegmentKind.SINGLETON:
            body = self.client.get(spec.path, account=feed.account, stream=spec.name)
            self.summary.page(spec.name)
            rows = body.get(spec.rows_field) or [] if spec.rows_field else [body]
            shaper, now = self.scope.shapers[spec.name], int(time.time())
            return SegmentResult(output=[(spec.name, shaper.shape(row, feed.record_account, now)) for row in rows])
        if segment.kind == SegmentKind.PAGES:
            page = self._asking(feed, lambda params: get_page(
                self.client, spec.path, params, segment.cursor, segment.earlier, account=feed.account,
                endpoint=spec.path, stream=spec.name, paginated=spec.paginated))
            self.summary.page(spec.name)
            result = self._parents(feed, page.get("data") or [])
            # A full-table list's pages are fetched one after the other, so one set of the
            # feed's cursors catches a list that loops back to any earlier page.
            result.next_cursor = next_cursor(page, feed.cursors, stream=spec.name, path=spec.path,
                                             paginated=spec.paginated)
            result.earlier = earlier_cursors(page, segment.cursor)
            return result
        if segment.kind == SegmentKind.EVENTS:
            return self._events_window(feed, segment)
        if segment.kind == SegmentKind.REPORT_PLAN:
            bookmark = self.state.get(spec.name, feed.account, "report")
            pending = self.state.get(spec.name, feed.account, "report_pending")
            rspec = reports.REPORTS_BY_NAME[spec.name]
            return SegmentResult(tasks=reports.plan_report(self.client, rspec, feed.account, bookmark,
                                                           self.settings.start, self.report_options, pending))
        if segment.kind == SegmentKind.REPORT:
            rows = reports.run_report(self.client, segment.task, self.report_options)
            self.summary.page(spec.name)
            account = feed.record_account
            return SegmentResult(output=[(spec.name, {**row, "_account_id": row.get("_account_id") or account})
                                         for row in rows])
        return self._list_window(feed, segment)

    def _list_window(self, feed: Feed, segment: Segment) -> SegmentResult:
        spec = feed.spec

        def first_page(params: list) -> tuple[Generator[dict, None, None], dict]:
            bodies = list_pages(self.client, spec.path, params + created_params(segment.lo, segment.hi),
                                account=feed.account, endpoint=spec.path, stream=spec.name)
            return bodies, next(bodies)

        before = self.client.received()
        bodies, first = self._asking(feed, first_page)
        objects = first.get("data") or []
        created_field = spec.created_field or "created"
        # Windows are sized from this page's objects, the freshest measure there is.
        object_bytes = (self.client.received() - before) // len(objects) if objects else None
        assert segment.lo is not None and segment.hi is not None  # a window has both ends
        split = split_if_dense(segment.lo, segment.hi, first, created_field, feed.window_records(object_bytes),
                               segment.fanout)
        if split is not None:
            bodies.close()
            self.summary.page(spec.name)
            result = self._parents(feed, list(reversed(split.kept)))
            result.split, result.objects = split, len(objects)
            return result
        # Page through the window. Each page is finished (and serialised) as it arrives and
        # handed to the main thread, which writes it at once (`Segment.parts`): a window holds
        # no more than a page in memory. Objects older than `segment.lo` are left out: another
        # worker may have taken that part.
        result = SegmentResult()
        for body in chain([first], bodies):
            if self.stop.is_set():
                raise Stopped
            self.summary.page(spec.name)
            page = body.get("data") or []
            result.objects += len(page)
            with self.paging.lock:
                feed.listed += len(page)
                lo = segment.lo  # raised by a steal, under this lock
                assert lo is not None
                if page and _created(page[-1], created_field, lo) < lo:
                    page = [obj for obj in page if _created(obj, created_field, lo) >= lo]
                    segment.closed = True
                elif not body.get("has_more"):
                    segment.closed = True
                elif page:
                    if segment.reached is None:
                        self.paging.notify()  # wake the main loop: this window can be shared
                    segment.reached, segment.read = page[-1].get(created_field), result.objects
                # Once this page is written, every object of the window from here up is.
                written_from = lo if segment.closed or not page else _created(page[-1], created_field, lo) + 1
            part = self._parents(feed, page[::-1])
            if part.pending is not None:
                result.pending = min(part.pending, result.pending or part.pending)
            rendered = self.rendered(part.output, feed.version)
            with self.paging.lock:
                segment.parts.append(Part(rendered, part.subs, written_from, part.pending))
                self.paging.notify()  # wake the main loop: a page to write
            if segment.closed:
                break
        result.rendered = True
        return result

    def _asking(self, feed: Feed, read: Callable[[list], _T]) -> _T:
        """`read(params)` with the feed's list parameters (`Children.parent_query`). A call that
        asked Stripe to embed child lists and was refused (a restricted key may read customers
        and not their tax ids) is made again without them, as the feed's calls are from then on:
        its children are read from their endpoints, as without the embedding, and skipped there
        if the key may not read them. So is one Stripe answers that it cannot expand (400,
        `param: expand`)."""
        params, added = self.children.parent_query(feed.root, feed)
        try:
            return read(params)
        except StripeError as exc:
            refused = isinstance(exc, PermissionDenied) or (exc.status == 400 and exc.error.get("param") == "expand")
            if not added or not refused:
                raise
            if not feed.include_refused:
                feed.include_refused = True
                LOGGER.info("Stream %s: a list call that embeds child lists (expand[]=%s) was refused; "
                            "their endpoints are read instead.", feed.label(), ", ".join(added))
            return read(self.children.parent_query(feed.root, feed)[0])

    def _parents(self, feed: Feed, objects: list[dict]) -> SegmentResult:
        """Shape parent objects (ascending) and start fetching their children.

        A parent is shaped before its children are submitted, children are shallow copies,
        and shaping and policies copy what they change below a record's top level, so no
        two records (nor threads) change a dict they share.
        """
        result = SegmentResult()
        root = feed.root
        shaper = self.scope.shapers[root.spec.name]
        created_field = root.spec.created_field
        unsettled = root.spec.unsettled
        includable = self.children.includable(root)
        for obj in objects:
            created = obj.get(created_field) if created_field else None
            changed = obj.get("updated") or created
            # The child lists the list embedded for the children only (`parent_query`) are not
            # the parent's: its record is as without them.
            obj, parent_of = self.children.included(includable, obj)
            if root.selected and root.wanted(created):
                result.output.append((root.spec.name, shaper.shape(obj, feed.record_account)))
                if unsettled and isinstance(created, int) and any(obj.get(f) == v for f, v in unsettled):
                    result.pending = created if result.pending is None else min(result.pending, created)
            for child in root.children:
                if child.skipped or not child.wanted(created):
                    continue
                if self.children.complete_in(child, parent_of):  # nothing to fetch: no task, no thread hand-off
                    result.output.extend(self.children.records(feed, child, parent_of, changed))
                else:
                    # Its own shallow copy: the parent's record may swap protected copies into
                    # its top-level fields while the child task reads them on another thread.
                    result.subs.append(self.submit(feed.version, False, self.children.records, feed, child,
                                                    dict(parent_of), changed))
        return result

    def _events_window(self, feed: Feed, segment: Segment) -> SegmentResult:
        events_list, split = ev.read_window(self.events, feed, segment)
        result = SegmentResult(split=split)
        for event in ev.newest_per_object(events_list, key=lambda event: ev.event_key(feed, event),
                                          final=lambda event: ev.ends_object(feed, event)):
            result.subs.append(self.submit(feed.version, True, ev.apply_event, self.events, feed, event))
        return result


def _created(obj: dict, created_field: str, default: int) -> int:
    value = obj.get(created_field)
    return value if isinstance(value, int) else default
