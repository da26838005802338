"""What a run reads, as the engine schedules it: a *feed* is one top-level stream (with its
child streams, its *members*) for one account, and a queue of *segments* in output order
(created-time windows, windows of events, pages of a full table, a singleton read, report
runs). Pure data, shared by the planner, the fetchers, the scheduler and the emitter."""

from __future__ import annotations

import math
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tap_stripe.engine.windows import TARGET_RECORDS, Split
from tap_stripe.errors import StripeError
from tap_stripe.spec import StreamSpec

WINDOW_BYTES = 2 << 20  # a window's target size in memory
FIRST_OBJECT_BYTES = 4 << 10  # a guess of an object's size until a feed has fetched some
Output = list[tuple[str, dict]]


class GroupKind(str, Enum):
    """What a rendered group (`Rendered`) holds: records new to the target, records read again
    from events, deletion records (the summary counts each), or a schema revision. A `str`, so
    it compares, prints and serialises as its value."""

    NEW = "new"
    UPDATED = "updated"
    DELETED = "deleted"
    # No records: its payload is the schema revision the stream's records after it need (new
    # fields, `tap_stripe.output.evolution`), its count 0; its SCHEMA is written before them.
    SCHEMA = "schema"

    def __str__(self) -> str:
        return self.value


# A segment's records as they wait to be written, grouped by stream and kind: (stream, kind,
# RECORD lines joined in one bytes object, or the records themselves when stream maps must run
# in the main thread, count).
Rendered = list[tuple[str, GroupKind, Any, int]]


class SegmentKind(str, Enum):
    """What a segment reads. A `str`, so it compares, prints and serialises as its value."""

    WINDOW = "window"  # a created-time window `[lo, hi)` of a list
    EVENTS = "events"  # a window of `/v1/events`
    PAGES = "pages"  # a page of a full table, from `cursor`
    SINGLETON = "singleton"  # one object
    REPORT_PLAN = "report_plan"  # which report runs to read
    REPORT = "report"  # one report run (`task`)

    def __str__(self) -> str:
        return self.value


@dataclass
class Member:
    """One stream of a family, as read for one account."""

    spec: StreamSpec
    selected: bool
    floor: int | None = None  # records created before this are not emitted
    skipped: str | None = None
    children: list[Member] = field(default_factory=list)

    def wanted(self, created: Any) -> bool:
        return self.floor is None or not isinstance(created, int) or created >= self.floor

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Part:
    """A page of a window being paged, as its worker finished it: its records, its children's
    fetches, and what writing it completes: every object of the window created at or after
    `written_from`. `pending`: see Segment.pending."""

    rendered: Rendered
    subs: list[Future]
    written_from: int
    pending: int | None = None


@dataclass(eq=False)  # segments are found by identity (deque.index), never compared by value
class Segment:
    kind: SegmentKind
    lo: int | None = None
    hi: int | None = None
    cursor: str | None = None  # pages: starting_after
    earlier: list[str] = field(default_factory=list)  # pages: cursors to fall back on (get_page)
    task: Any = None  # report: the run it reads
    estimate: int | None = None  # window: objects expected, from the split that made it
    fanout: int | None = None  # window: open (data may begin anywhere below): its first split's fan-out
    types: tuple[str, ...] = ()  # events: the event types it reads (Stripe takes 20 at most)
    advances: bool = True  # events: whether it moves the events bookmark (the last group does)
    # A window being paged: the oldest created time read so far, and whether paging ended.
    # `lo` may be raised while it runs (Scheduler.steal); all under Paging.lock.
    reached: int | None = None
    read: int = 0  # objects read so far
    closed: bool = False
    future: Future | None = None
    subs: list[Future] = field(default_factory=list)
    output: Rendered = field(default_factory=list)
    # A window's pages as its worker finishes them, each with its children's fetches, for the
    # main thread to write at once (under Paging.lock); `written`: its output went out early.
    parts: list[Part] = field(default_factory=list)
    written: bool = False
    ready: bool = False
    nbytes: int = 0  # response bytes behind `output`
    # A window: the oldest `created` of its objects that can still change without an event
    # (`StreamSpec.unsettled`), and whether its progress was recorded before it reached the head.
    pending: int | None = None
    recorded: bool = False
    unsettled: bool = False  # a page written held such objects: its progress is left to the bookmark


@dataclass
class SegmentResult:
    output: Any = field(default_factory=list)  # Output as fetched; Rendered once `rendered`
    subs: list[Future] = field(default_factory=list)
    split: Split | None = None
    next_cursor: str | None = None
    earlier: list[str] = field(default_factory=list)  # pages: see Segment.earlier
    tasks: list | None = None  # report_plan: the report runs to read, in order
    nbytes: int = 0
    objects: int = 0  # objects fetched (for the size estimate)
    pending: int | None = None  # see Segment.pending
    rendered: bool = False  # output already holds finished lines (see Fetcher.rendered)


class Paging:
    """Shared by the workers paging windows and the scheduler that may split them: a lock
    over a running window's `lo`, `reached`, `read` and `closed`, and a wake-up for the
    main loop when a window starts paging (it can then be shared), has a page to write, or a
    task ends (`Scheduler.submit`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake: Future = Future()

    def notify(self) -> None:
        """Called under `lock` by a worker whose window has more pages or a page to write, and
        when a task ends."""
        if not self.wake.done():
            self.wake.set_result(None)

    def renew(self) -> Future:
        """Called by the scheduler before it looks at the windows, so no wake-up is lost."""
        if self.wake.done():
            self.wake = Future()
        return self.wake


class Feed:
    """One top-level stream (with its children) for one account."""

    def __init__(self, root: Member, account: str | None, hi: int):
        self.root = root
        self.account = account  # sent as Stripe-Account; None: the key's own account
        self.record_account = account  # its records' `_account_id`: the key's own account's id too
        self.segments: deque[Segment] = deque()
        self.version: int | None = None  # the table version its records carry
        self.activate = False  # whether its end activates that version (full reads only)
        # A full read as a new table version (a resync, or a full table's pages): its events move
        # no bookmark, its end sets them. `resync`: of a list read in created-time windows.
        self.full_read = False
        self.resync = False
        # Its upper bound is end_date, before Stripe's clock: a full read it makes is incomplete
        # (no ACTIVATE_VERSION, no end of the resync) and no bookmark is set back to it.
        self.bounded = False
        self.pending_seen: int | None = None  # the oldest Segment.pending of the windows emitted
        self.events_types: tuple[str, ...] = ()
        self.hi = hi
        self.emitted_hi: int | None = None
        self.started: int | None = None  # a resync: the upper bound of the run that began it
        self.deletions_from: int | None = None  # a resync: where its events start
        # A resync reads events only for what its re-read cannot see: deleted objects, and
        # children an update removed (a resumed one reads every change: `deletions_only` false).
        self.deletions_only = False
        # Objects created at or after this (and before `hi`) are read by this run's list windows
        # for every selected member, after every event of the run: their update events add nothing.
        self.listed_from: int | None = None
        # Child lists the key may not read, found by workers: (member, error), for the main
        # thread to skip before it writes anything more of the feed.
        self.child_failures: list[tuple[Member, StripeError]] = []
        # A list call that asked Stripe to embed child lists was refused: its lists ask no more
        # (`Children.parent_query`; set by a worker, read by all, only ever set to True).
        self.include_refused = False
        self.progress_lo: int | None = None
        self.listed = 0  # objects its list windows have read so far (workers, under the paging lock)
        self.object_bytes = FIRST_OBJECT_BYTES  # running average size of its objects (main thread)
        self.cursors: set[str] = set()  # a full-table list's cursors so far

    def window_records(self, object_bytes: int | None = None) -> int:
        """How many objects a window should hold: about ten pages, fewer for large objects,
        so a window stays near WINDOW_BYTES in memory."""
        return max(200, min(TARGET_RECORDS, WINDOW_BYTES // max(1, object_bytes or self.object_bytes)))

    def expected_records(self, segment: Segment) -> int:
        """Objects `segment` is expected to hold: its estimate from the split that made it,
        or a window's worth."""
        if segment.kind not in (SegmentKind.WINDOW, SegmentKind.EVENTS):
            return 100
        return segment.estimate or self.window_records()

    def expected_pages(self, segment: Segment) -> int:
        return max(1, math.ceil(self.expected_records(segment) / 100))

    def expected_bytes(self, segment: Segment) -> int:
        """What fetching `segment` will add to memory: a window's pages are written as they
        arrive (a page being read, a page waiting); other segments wait whole, but one too
        large to page through is split after one page."""
        records = self.expected_records(segment)
        if segment.kind == SegmentKind.WINDOW:
            return 2 * min(records, 100) * self.object_bytes
        return (records if records <= 2 * self.window_records() else 100) * self.object_bytes

    def child_of_type(self, object_type: Any) -> Member | None:
        """The child stream whose records are objects of `object_type` and have events."""
        for member in self.root.children:
            if member.spec.event_types and object_type in member.spec.object_types:
                return member
        return None

    def live_members(self) -> list[Member]:
        """The family's streams this run writes: selected and not skipped."""
        return [m for m in self.root.walk() if m.selected and not m.skipped]

    @property
    def spec(self) -> StreamSpec:
        return self.root.spec

    @property
    def name(self) -> str:
        return self.spec.name

    def label(self) -> str:
        return f"{self.name}" + (f" [{self.account}]" if self.account else "")
