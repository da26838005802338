"""Emission: the main thread alone writes. It writes a feed's head segment once it and its
children are complete, moves the bookmarks past it, and writes STATE (at most once a second,
and at the end). A bookmark therefore only ever moves past records already written, whatever
was fetched ahead, and a killed run resumes from its last STATE. With schema evolution, a
stream's updated SCHEMA is written right before the first records that need it (`announce`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson

from tap_stripe.engine.feeds import Feed, GroupKind, Member, Rendered, Segment, SegmentKind
from tap_stripe.engine.state import State
from tap_stripe.errors import FatalRunError, PermissionDenied, ReportFailed, StripeError
from tap_stripe.output.records import rfc3339
from tap_stripe.output.summary import RunSummary

LOGGER = logging.getLogger("tap_stripe")
STATE_INTERVAL = 1.0
# ... or sooner, once this many records were written since the last STATE (more for a large
# state: a STATE costs at most about a tenth of the ~2 KB records it follows), so a run killed
# without warning (SIGKILL, an out-of-memory kill) keeps its progress however fast it writes.
STATE_RECORDS = 100


@dataclass
class Sinks:
    """Where a run's messages go."""

    emitters: Mapping[str, Callable[[dict, str, int | None], None]]  # a record, in the main thread
    # A record to a finished RECORD line, in a worker (streams whose records need no main-thread work).
    render: Mapping[str, Callable[[dict, str, int | None], bytes]]
    write_line: Callable[[bytes], None] | None
    write_message: Callable[[dict], None]
    activate_versions: bool  # whether full reads end with ACTIVATE_VERSION
    # Schema evolution: (stream, revision announced so far) -> the stream's newest revision, its
    # SCHEMA messages and what changed since (`SchemaEvolution.announcement`); None: no evolution.
    schema_change: Callable[[str, int], tuple[int, list[dict], list[str]]] | None = None


class Emission:
    def __init__(self, sinks: Sinks, state: State, summary: RunSummary, on_permission_error: str = "skip"):
        self.sinks = sinks
        self.state = state
        self.summary = summary
        self.on_permission_error = on_permission_error
        self._last_state = 0.0
        self._written = 0  # records written since the last STATE
        self._state_records = STATE_RECORDS  # how many records call for a STATE (see STATE_RECORDS)
        self.state_dirty = False
        self.announced: dict[str, int] = {}  # per stream, the schema revision its last SCHEMA carried

    def emit_segment(self, feed: Feed, segment: Segment, output: Rendered) -> None:
        """Write a feed's head segment (what of it was not written early) and move its bookmarks."""
        self.write(feed, output)
        self.advance_bookmarks(feed, segment, output or segment.written)

    def write(self, feed: Feed, output: Rendered) -> None:
        """Write records of `feed` (a head segment's, or a window's page as it arrives)."""
        extracted = rfc3339(int(time.time()))
        skipped = {m.spec.name for m in feed.root.walk() if m.skipped}
        write_line, version = self.sinks.write_line, feed.version
        for stream, kind, payload, _ in output:
            if stream in skipped:
                continue
            if kind == GroupKind.SCHEMA:
                self.announce(stream, payload)
                continue
            if type(payload) is bytes:
                assert write_line is not None  # lines are rendered only for a writer that takes them
                write_line(payload)
            else:
                emit = self.sinks.emitters[stream]
                for record in payload:
                    emit(record, extracted, version)
        self.summary.count(output, skipped)
        self._written += sum(count for stream, _, _, count in output if stream not in skipped)

    def advance_bookmarks(self, feed: Feed, segment: Segment, had_output: object) -> None:
        """The segment and every one before it were written: move the bookmarks past it."""
        name, account = feed.name, feed.account
        if segment.kind == SegmentKind.WINDOW and segment.hi is not None:
            feed.emitted_hi = segment.hi
            if had_output and feed.progress_lo is None:
                feed.progress_lo = segment.lo  # where the data starts, for progress lines
            if feed.resync:
                resync = {**(self.state.get(name, account, "resync") or {}), "version": feed.version,
                          "created": segment.hi, "started": feed.started}
                # The streams that received every window of this version so far.
                live = {m.spec.name for m in feed.live_members()}
                resync["streams"] = sorted(live.intersection(resync.get("streams", live)))
                done = _after(resync.pop("done", None), segment.hi)
                self.state.set(name, account, "resync", {**resync, "done": done} if done else resync)
            else:
                for member in feed.live_members():
                    self.state.advance(member.spec.name, account, "created", segment.hi)
                    self.state.set(member.spec.name, account, "done",
                                   _after(self.state.get(member.spec.name, account, "done"), segment.hi))
                self.advance_pending(feed, segment)
        elif segment.kind == SegmentKind.PAGES and feed.full_read and len(feed.segments) > 1 \
                and feed.segments[1].kind == SegmentKind.PAGES and feed.segments[1].cursor:
            # A full table read page by page: a killed run's next run goes on after this page.
            after = feed.segments[1]
            self.state.set(name, account, "table", {
                "version": feed.version, "cursor": after.cursor, "earlier": after.earlier[:10],
                "streams": sorted(m.spec.name for m in feed.live_members())})
        elif segment.kind == SegmentKind.REPORT:
            self.state.set(name, account, "report", segment.task.bookmark_after)
            if segment.task.pending_after is not None:  # single-payout reports: [] drops the key
                self.state.set(name, account, "report_pending", list(segment.task.pending_after) or None)
        elif segment.kind == SegmentKind.EVENTS and segment.hi is not None and segment.advances and not feed.full_read:
            # Each member that received the events: one deselected or skipped catches up later.
            for member in feed.live_members():
                self.state.advance(member.spec.name, account, "events", segment.hi)
        self.state_dirty = True

    def advance_pending(self, feed: Feed, segment: Segment) -> None:
        """A stream whose objects can change without an event (`StreamSpec.unsettled`): every
        object created before `pending` is settled, so the next run re-reads from there."""
        root = feed.root
        if not root.spec.unsettled or not root.selected or root.skipped or segment.hi is None:
            return
        if segment.pending is not None:
            feed.pending_seen = min(segment.pending, feed.pending_seen or segment.pending)
        pending = segment.hi if feed.pending_seen is None else min(feed.pending_seen, segment.hi)
        self.state.set(root.spec.name, feed.account, "pending", pending)

    def record_done(self, feed: Feed, lo: int, hi: int) -> None:
        """Every object of `[lo, hi)` was written, ahead of where the bookmark is: saved as a
        done span, so a run killed before the bookmark reaches it does not read it again."""
        if lo >= hi:
            return
        name, account = feed.name, feed.account
        if feed.resync:
            resync = self.state.get(name, account, "resync")
            if resync is not None:
                self.state.set(name, account, "resync", {**resync, "done": _merged(resync.get("done"), [lo, hi])})
        else:
            for member in feed.live_members():
                self.state.set(member.spec.name, account, "done",
                               _merged(self.state.get(member.spec.name, account, "done"), [lo, hi]))
        self.state_dirty = True

    def announce(self, stream: str, need: int) -> None:
        """Before records that need schema revision `need` of their stream: its newest SCHEMA,
        unless one as new was written. Revisions only widen the schema, so a newer one than
        `need` fits the records written before it too."""
        announced = self.announced.get(stream, 0)
        if need <= announced or self.sinks.schema_change is None:
            return
        revision, messages, changes = self.sinks.schema_change(stream, announced)
        for message in messages:
            self.sinks.write_message(message)
            self.summary.schema(stream)
        for text in changes:
            self.summary.note(stream, text)
            LOGGER.info("Schema evolution: %s.", text)
        self.announced[stream] = revision

    def finish(self, feed: Feed) -> None:
        """A feed's every segment was emitted: end its full read (unless end_date bounded it),
        activate its table version if it has one."""
        name, account = feed.name, feed.account
        if feed.full_read and not feed.bounded:
            self.state.set(name, account, "table", None)
            if feed.resync:
                self.state.set(name, account, "resync", None)
                for member in feed.live_members():
                    self.state.advance(member.spec.name, account, "created", feed.hi)
            if not feed.root.skipped:
                self.state.set(name, account, "version", feed.version)
                if feed.spec.event_types:  # every event before the run's bound is reflected now
                    for member in feed.live_members():
                        self.state.advance(member.spec.name, account, "events", feed.hi)
                if feed.resync or feed.spec.event_types:
                    self.state.set(name, account, "reconciled", feed.started or feed.hi)
        if feed.activate and feed.version is not None and self.sinks.activate_versions:
            for member in feed.live_members():
                self.sinks.write_message({"type": "ACTIVATE_VERSION", "stream": member.spec.name,
                                          "version": feed.version})
        self.state_dirty = True

    def skip(self, feed: Feed, member: Member, exc: StripeError) -> None:
        reason = skip_reason(exc)
        if isinstance(exc, PermissionDenied) and self.on_permission_error == "fail":
            raise FatalRunError(stream_message(feed, exc)) from None
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

    def maybe_write_state(self) -> None:
        if self.state_dirty and (self._written >= self._state_records or
                                 time.monotonic() - self._last_state >= STATE_INTERVAL):
            self.write_state()

    def write_state(self, force: bool = False) -> None:
        if self.state_dirty or force:
            message = {"type": "STATE", "value": self.state.data}
            self.sinks.write_message(message)
            self._state_records = max(STATE_RECORDS, len(orjson.dumps(message)) // 200)
            self.state_dirty = False
            self._last_state = time.monotonic()
            self._written = 0


def skip_reason(exc: StripeError) -> str:
    if isinstance(exc, ReportFailed):
        return str(exc)
    message = exc.error.get("message") or str(exc)
    permission = re.search(r"'(rak_[a-z_]+)'", message)
    if isinstance(exc, PermissionDenied):
        return "permission denied" + (f" (needs {permission[1]})" if permission else "") + \
            f" [HTTP {exc.status}, request id {exc.request_id or '-'}]"
    return f"product not set up on this account [HTTP {exc.status}: {' '.join(message.split())[:160]}]"


def stream_message(feed: Feed, exc: StripeError) -> str:
    text = str(exc)
    return text if text.startswith("stream ") else f"stream {feed.label()}: {text}"


def _after(spans: list | None, cursor: int) -> list | None:
    """Done spans still ahead of a bookmark now at `cursor` (None: none left)."""
    kept = [span for span in spans or () if span[1] > cursor]
    return kept or None


def _merged(spans: list | None, span: list[int]) -> list[list[int]]:
    """`spans` (sorted, disjoint) with `span` added, touching spans joined."""
    result: list[list[int]] = []
    lo, hi = span
    for a, b in sorted([*(spans or ()), [lo, hi]]):
        if result and a <= result[-1][1]:
            result[-1][1] = max(result[-1][1], b)
        else:
            result.append([a, b])
    return result
