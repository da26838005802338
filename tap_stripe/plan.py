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
from dataclasses import dataclass
from typing import Any

from tap_stripe.feeds import Feed, Member, Segment
from tap_stripe.records import RecordShaper, rfc3339
from tap_stripe.spec import StreamSpec
from tap_stripe.state import State
from tap_stripe.summary import RunSummary
from tap_stripe.windows import FIRST_FANOUT

LOGGER = logging.getLogger("tap_stripe")
EVENTS_RETENTION = 30 * 86400
EVENTS_SAFETY_MARGIN = 86400


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
    # Schema evolution (`tap_stripe.evolution`): admits a shaped record's new fields in the
    # worker that renders it, and returns the schema revision it needs (None: no evolution, the
    # shapers drop fields their schemas lack).
    admit: Callable[[str, dict], int] | None = None


class Planner:
    def __init__(self, scope: Scope, state: State, settings: Any, summary: RunSummary,
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
                self.plan_feed(feed)
                feeds.append(feed)
        return feeds

    def plan_feed(self, feed: Feed) -> None:
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
            events_from = self.plan_events(feed)
            if events_from is not None and events_from - settings.lookback < self.scope.now - EVENTS_RETENTION \
                    + EVENTS_SAFETY_MARGIN:
                LOGGER.warning(
                    "Stream %s%s: its events bookmark (%s) is older than Stripe keeps events (30 days, "
                    "less a day of margin); re-reading the whole list instead, as a new table version, so "
                    "no change is missed and deleted objects can be dropped.",
                    spec.name, f" account {account}" if account else "", rfc3339(events_from))
                self.summary.note(spec.name, "events bookmark older than 30 days: full re-read")
                feed.resync, events_from = True, None
        if feed.resync:
            lo, events_lo = self.plan_resync(feed), feed.deletions_from
        else:
            lo = self.plan_floors(feed)
            feed.events_types = self.event_types(feed)
            # Incremental records carry the version of the stream's last full read, so the next
            # full read's ACTIVATE_VERSION lets targets drop what it no longer finds.
            feed.version = self.state.get(spec.name, account, "version")
            if feed.version is None:
                feed.version = self.new_version()
                self.state.set(spec.name, account, "version", feed.version)
            events_lo = events_from - settings.lookback if events_from is not None else None
        if lo is None or lo < feed.hi:
            # From the beginning or start_date, nothing says where the data begins: an open window.
            is_open = lo is None or lo == settings.start
            feed.segments.append(Segment("window", lo if lo is not None else 0, feed.hi,
                                         fanout=FIRST_FANOUT if is_open else None))
            floors = [m.floor or 0 for m in feed.root.walk() if m.selected]
            feed.listed_from = max([lo or 0, *floors])
        if events_lo is not None and events_lo < feed.hi:
            # Over the same span, one group of types after the other: only the last group's
            # windows move the bookmark, when every group before it was read to the end.
            groups = _type_groups(feed.events_types)
            for i, types in enumerate(groups):
                feed.segments.append(Segment("events", events_lo, feed.hi, types=types, advances=i == len(groups) - 1))

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
        events_from = self.state.get(spec.name, account, "events")
        oldest = self.scope.now - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN
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
        `created` bookmark, less the lookback (or `reread_days`); an unselected member's floor is the
        lowest of the selected
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

    def plan_events(self, feed: Feed) -> int | None:
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
