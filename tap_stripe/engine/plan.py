"""The plan: from the state and the settings, what each feed of a run reads, in order.

One feed per (top-level stream, account); each is a queue of segments (see feeds.py):
created-time windows of its list from its bookmarks (less the lookback), then windows of
the events that changed or deleted its objects since its events bookmark; or a full re-read
as a new table version (`full_resync_streams`, a resync in progress, an events bookmark
older than Stripe keeps events); or the pages of a full-table list, one singleton read, a
report plan. Planning writes the bookmarks a first load needs at once (where its events
start, its table version), so a run killed before its first STATE resumes correctly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_stripe.engine.feeds import Feed, Member, Segment, SegmentKind
from tap_stripe.engine.state import State
from tap_stripe.engine.windows import FIRST_FANOUT
from tap_stripe.output.records import RecordShaper, rfc3339
from tap_stripe.output.summary import RunSummary
from tap_stripe.spec import StreamKind, StreamSpec

if TYPE_CHECKING:
    from tap_stripe.settings import Settings

LOGGER = logging.getLogger("tap_stripe")
EVENTS_RETENTION = 30 * 86400
EVENTS_SAFETY_MARGIN = 86400
UNSETTLED_DAYS = 14


@dataclass
class Scope:
    """What a run reads: the streams, the selection, the accounts, and its time bounds."""

    specs: dict[str, StreamSpec]
    selected: set[str]
    accounts: list[str | None]
    # Streams read once for the platform, not per account, and whether the platform is read.
    platform_streams: tuple[set[str], bool]
    hi: int  # the run's upper bound on `created`: Stripe's clock at the start, or end_date
    now: int  # Stripe's clock at the start (the 30-day events guard counts from it)
    shapers: Mapping[str, RecordShaper]
    # Schema evolution (`tap_stripe.output.evolution`): admits a shaped record's new fields in the
    # worker that renders it, and returns the schema revision it needs (None: no evolution, the
    # shapers drop fields their schemas lack).
    admit: Callable[[str, dict], int] | None = None
    # The streams whose classes override `post_process` (the SDK's hook), by name: called on each
    # shaped record of the stream in the worker, before it is rendered (None drops it).
    post_process: Mapping[str, Callable[[dict, Any], dict | None]] = field(default_factory=dict)
    # The upper bound is end_date, before Stripe's clock: full reads are incomplete (no
    # ACTIVATE_VERSION, no end of a resync) and none begins for the periodic reconciliation.
    bounded: bool = False
    own_account: str | None = None  # the key's own account's id (`GET /v1/account`), when it may read it


class Planner:
    def __init__(self, scope: Scope, state: State, settings: Settings, summary: RunSummary,
                 new_version: Callable[[], int] | None = None):
        self.scope = scope
        self.state = state
        self.settings = settings
        self.summary = summary
        self.new_version = new_version or (lambda: int(time.time() * 1000))

    def family(self, spec: StreamSpec) -> Member | None:
        """The member for `spec` and its children, when any of them is selected."""
        specs = self.scope.specs
        children = [m for m in (self.family(specs[c]) for c in spec.children if c in specs) if m]
        member = Member(spec, spec.name in self.scope.selected, children=children)
        return member if member.selected or children else None

    def plan(self) -> list[Feed]:
        feeds = []
        platform, read_platform = self.scope.platform_streams
        for spec in self.scope.specs.values():
            if spec.parent:
                continue
            accounts = ([None] if read_platform else []) if spec.name in platform else self.scope.accounts
            for account in accounts:
                root = self.family(spec)
                if root is None:
                    continue
                feed = Feed(root, account, self.scope.hi)
                feed.record_account = account or self.scope.own_account
                self.plan_feed(feed)
                feeds.append(feed)
        return feeds

    def plan_feed(self, feed: Feed) -> None:
        spec, account, settings = feed.spec, feed.account, self.settings
        feed.bounded = self.scope.bounded
        if spec.kind == StreamKind.SINGLETON:
            feed.segments.append(Segment(SegmentKind.SINGLETON))
            return
        if spec.kind == StreamKind.REPORT:
            feed.segments.append(Segment(SegmentKind.REPORT_PLAN))
            return
        if not spec.replication_key:
            self.plan_table(feed)
            return
        # A resync in progress is finished whatever the settings say now: its records carry
        # a table version, and only its end sets the bookmarks an incremental run needs. A
        # periodic one begins on the first run past the interval (not in a run bounded by end_date).
        feed.resync = self.state.get(spec.name, account, "resync") is not None or \
            (spec.name in settings.full_resync_streams and self.due(feed) and not feed.bounded)
        events_from = None
        if not feed.resync and spec.event_types:
            events_from = self.plan_events(feed)
            if events_from is not None and self.expired(events_from):
                self.warn_expired(feed, events_from)
                feed.resync, events_from = True, None
        if feed.resync:
            feed.full_read = True
            lo, events_lo = self.plan_resync(feed), feed.deletions_from
            done = (self.state.get(spec.name, account, "resync") or {}).get("done") or []
        else:
            lo = self.plan_floors(feed)
            feed.events_types = self.event_types(feed)
            # Incremental records carry the version of the stream's last full read, so the next
            # full read's ACTIVATE_VERSION lets targets drop what it no longer finds.
            feed.version = self.current_version(feed)
            events_lo = events_from - settings.lookback if events_from is not None else None
            done = _common_done([self.state.get(m.spec.name, account, "done") or []
                                 for m in feed.root.walk() if m.selected])
        if lo is None or lo < feed.hi:
            self.plan_windows(feed, lo, done)
        if events_lo is not None and events_lo < feed.hi:
            self.plan_event_windows(feed, events_lo)

    def plan_windows(self, feed: Feed, lo: int | None, done: list[list[int]]) -> None:
        """Created-time windows from `lo` to the run's bound, less the spans a killed run
        completed (`done`, each less the lookback at its end)."""
        lookback, start = self.settings.lookback, self.settings.start
        floors = [m.floor or 0 for m in feed.root.walk() if m.selected]
        feed.listed_from = max([lo or 0, *floors])
        cursor = lo if lo is not None else 0
        for done_lo, done_hi in done:
            done_hi = min(done_hi - lookback, feed.hi)
            if done_hi <= max(done_lo, cursor):
                continue
            if done_lo > cursor:
                self.add_window(feed, cursor, done_lo, is_open=cursor == (lo or 0) and (lo is None or lo == start))
            cursor = done_hi
            # Objects in a span a killed run read may have changed since: their events count.
            feed.listed_from = max(feed.listed_from, done_hi)
        if cursor < feed.hi:
            self.add_window(feed, cursor, feed.hi, is_open=cursor == (lo or 0) and (lo is None or lo == start))

    def add_window(self, feed: Feed, lo: int, hi: int, is_open: bool) -> None:
        # From the beginning or start_date, nothing says where the data begins: an open window.
        feed.segments.append(Segment(SegmentKind.WINDOW, lo, hi, fanout=FIRST_FANOUT if is_open else None))

    def plan_event_windows(self, feed: Feed, events_lo: int) -> None:
        """Over the same span, one group of types after the other: only the last group's
        windows move the bookmark, when every group before it was read to the end."""
        groups = _type_groups(feed.events_types)
        for i, types in enumerate(groups):
            feed.segments.append(Segment(SegmentKind.EVENTS, events_lo, feed.hi, types=types,
                                         advances=i == len(groups) - 1))

    def plan_table(self, feed: Feed) -> None:
        """A list without a `created` filter: read whole as a new table version. One with
        events is read whole once and then every `full_resync_every_days` (the reconciliation);
        in between only its events are read: its changes, and deletions also for several accounts."""
        spec, account, lookback = feed.spec, feed.account, self.settings.lookback
        feed.bounded = False  # no created filter: end_date does not bound the read
        for member in feed.root.walk():
            member.floor = self.settings.start  # objects created before start_date are not emitted
        # Every selected member must have read the table whole (a member new to the selection has
        # no events bookmark of its own yet).
        own = [self.state.get(m.spec.name, account, "events") for m in feed.root.walk() if m.selected]
        events_from = min(own) if spec.event_types and None not in own else None
        # A read a killed run left part-way goes on from its last written page, in its version.
        progress = self.state.get(spec.name, account, "table")
        if progress is not None and progress.get("streams") != sorted(m.spec.name for m in feed.root.walk()
                                                                      if m.selected):
            progress = None  # another selection: begin again, so every stream reads the whole table
        if progress is None and events_from is not None and not self.due(feed) and not self.expired(events_from):
            feed.version = self.current_version(feed)
            feed.events_types = self.event_types(feed)
            self.plan_event_windows(feed, events_from - lookback)
            return
        feed.activate, feed.full_read = True, True
        if progress is not None:
            feed.version = progress["version"]
            feed.segments.append(Segment(SegmentKind.PAGES, cursor=progress["cursor"],
                                         earlier=list(progress.get("earlier") or ())))
        else:
            feed.version = self.new_version()
            feed.segments.append(Segment(SegmentKind.PAGES))
        if not spec.event_types:
            return
        since = self.events_since(feed)
        # A member's events begin where its first read does; saved at once, so a read killed
        # before its end is followed by the deletions since.
        for member in feed.root.walk():
            if member.selected and self.state.get(member.spec.name, account, "events") is None:
                self.state.set(member.spec.name, account, "events", feed.hi)
        if since is None:
            return
        deleted = tuple(t for t in (spec.deleted_event, *(m.spec.deleted_event for m in feed.root.children)) if t)
        if deleted:
            feed.events_types, feed.deletions_only = deleted, True
            self.plan_event_windows(feed, max(since - lookback, self.scope.now - EVENTS_RETENTION))

    def due(self, feed: Feed) -> bool:
        """Whether a stream's periodic full re-read is due: never done, or done longer ago than
        `full_resync_every_days`."""
        reconciled = self.state.get(feed.name, feed.account, "reconciled")
        return reconciled is None or self.scope.now - reconciled >= self.settings.full_resync_every

    def expired(self, events_from: int) -> bool:
        """Whether events since `events_from` (less the lookback) are older than Stripe keeps
        (30 days, less a day of margin)."""
        return events_from - self.settings.lookback < self.scope.now - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN

    def warn_expired(self, feed: Feed, events_from: int) -> None:
        LOGGER.warning(
            "Stream %s%s: its events bookmark (%s) is older than Stripe keeps events (30 days, "
            "less a day of margin); re-reading the whole list instead, as a new table version, so "
            "no change is missed and deleted objects can be dropped.",
            feed.name, f" account {feed.account}" if feed.account else "", rfc3339(events_from))
        self.summary.note(feed.name, "events bookmark older than 30 days: full re-read")

    def current_version(self, feed: Feed) -> int:
        """The table version of the stream's last full read (a new one, saved, if none)."""
        version = self.state.get(feed.name, feed.account, "version")
        if version is None:
            version = self.new_version()
            self.state.set(feed.name, feed.account, "version", version)
        return version

    def plan_resync(self, feed: Feed) -> int | None:
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
        events_from = self.events_since(feed)
        oldest = self.scope.now - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN
        feed.activate = not feed.bounded
        if resync:
            # A resync begun by a tap that did not record `started`: the newest time known to be
            # safe (the last events or created bookmark), else the oldest event Stripe keeps.
            feed.started = next((v for v in (resync.get("started"), events_from,
                                             self.state.get(spec.name, account, "created")) if v is not None), oldest)
            if feed.started - lookback < oldest and spec.event_types:
                resync = None  # the changes since it began are no longer all in Stripe's events
        selected = sorted(m.spec.name for m in feed.root.walk() if m.selected)
        if resync and not set(selected) <= set(resync.get("streams", selected)):
            # A stream selected now missed the part already read (deselected or skipped then):
            # its version would lack those rows, so the re-read begins again.
            resync = None
        if resync:
            feed.version, lo = resync["version"], resync.get("created", start)
        else:
            feed.version, lo, feed.started = self.new_version(), start, feed.hi
            self.state.set(spec.name, account, "resync", {"version": feed.version, "created": start,
                                                          "started": feed.started, "streams": selected})
        for member in feed.root.walk():
            member.floor = start
        assert feed.started is not None  # set above on both paths
        if resync and spec.event_types:
            feed.events_types = self.event_types(feed)
            since = min(feed.started, events_from) if events_from is not None else feed.started
            feed.deletions_from = max(since - lookback, self.scope.now - EVENTS_RETENTION)
        elif events_from is not None and spec.event_types:
            # Deleted objects and children, and children an update removed from an embedded list.
            removals = any(m.spec.embedded_field and not m.spec.event_types for m in feed.root.children)
            deleted = tuple(t for t in (spec.deleted_event, *(m.spec.deleted_event for m in feed.root.children)) if t)
            feed.events_types = self.event_types(feed) if removals else deleted
            feed.deletions_from = max(events_from - lookback, self.scope.now - EVENTS_RETENTION)
            feed.deletions_only = True
        return lo

    def event_types(self, feed: Feed) -> tuple[str, ...]:
        """The events that change a feed's records: its stream's, and its children's own (a
        child's event re-reads its parent by id)."""
        spec = feed.spec
        children = tuple(t for m in feed.root.children for t in m.spec.event_types) if spec.retrieve_path else ()
        return spec.event_types + children

    def plan_floors(self, feed: Feed) -> int | None:
        """Each member's floor (records created before it are not emitted) from its own
        `created` bookmark, less the lookback (or `reread_days`, or back to the oldest object
        that could still change without an event); an unselected member's floor is the lowest
        of the selected ones below it. The feed's windows start at the root's floor."""
        account, start, settings = feed.account, self.settings.start, self.settings

        def floor(member: Member) -> tuple[bool, int | None]:
            floors: list[int | None] = []
            if member.selected:
                # Streams whose objects change without events are re-read `reread_days` back.
                lookback = max(settings.lookback, int(settings.reread_days.get(member.spec.name, 0) * 86400))
                cursor = self.state.get(member.spec.name, account, "created")
                own = cursor - lookback if cursor is not None else None
                if own is not None and member.spec.unsettled:
                    pending = self.state.get(member.spec.name, account, "pending")
                    # A state without `pending` (none recorded yet): the 14 days earlier versions re-read.
                    own = min(own, pending if pending is not None else cursor - UNSETTLED_DAYS * 86400)
                floors.append(_max(start, own))
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

    def member_events(self, feed: Feed, member: Member) -> int | None:
        """Where a member's events start: its own events bookmark. A state from before each
        member kept one: the family's (its root's); one from before events were kept: the
        oldest `created` bookmark of the family (the list was read then). None: a first load."""
        account = feed.account
        own = self.state.get(member.spec.name, account, "events")
        if own is not None:
            return own
        family = self.state.get(feed.name, account, "events")
        if family is not None and self.state.get(member.spec.name, account, "created") is not None:
            return family
        created = [c for m in feed.root.walk() if m.selected
                   if (c := self.state.get(m.spec.name, account, "created")) is not None]
        if self.state.get(member.spec.name, account, "created") is None:
            return None
        return min(created, default=None)

    def events_since(self, feed: Feed) -> int | None:
        """Where the family's events start: the oldest of its selected members' bookmarks, so
        a member that missed the family's events (deselected, skipped, failed) catches up."""
        found = [e for m in feed.root.walk() if m.selected if (e := self.member_events(feed, m)) is not None]
        return min(found) if found else None

    def plan_events(self, feed: Feed) -> int | None:
        """Where this run's events start, or None when there are none to read.

        A member's first load: its events start at this run's upper bound (the list covers
        what came before), and that is saved at once, so a first load resumed later still
        reads the events since. Each selected member keeps its own events bookmark; the
        family reads from the oldest.
        """
        account = feed.account
        found = []
        for member in feed.root.walk():
            if not member.selected:
                continue
            events = self.member_events(feed, member)
            self.state.set(member.spec.name, account, "events", events if events is not None else feed.hi)
            if events is not None:
                found.append(events)
        return min(found) if found else None


def _common_done(spans: list[list]) -> list[list[int]]:
    """The spans every member completed (each member's sorted, disjoint `done` spans)."""
    if not spans:
        return []
    common = [list(s) for s in spans[0]]
    for other in spans[1:]:
        common = [[max(a, c), min(b, d)] for a, b in common for c, d in other if max(a, c) < min(b, d)]
    return sorted(common)


def _type_groups(types: tuple[str, ...], size: int = 20) -> list[tuple[str, ...]]:
    """Event types in groups Stripe accepts in one `types[]` query, the stream's own first."""
    unique = tuple(dict.fromkeys(types))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
