"""Emission: the main thread alone writes. It writes a feed's head segment once it and its
children are complete, moves the bookmarks past it, and writes STATE (at most once a second,
and at the end). A bookmark therefore only ever moves past records already written, whatever
was fetched ahead, and a killed run resumes from its last STATE.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable

from tap_stripe import reports
from tap_stripe.client import PermissionDenied, StripeError
from tap_stripe.errors import FatalRunError
from tap_stripe.feeds import Feed, Member, Rendered, Segment
from tap_stripe.records import rfc3339
from tap_stripe.state import State
from tap_stripe.summary import RunSummary

LOGGER = logging.getLogger("tap_stripe")
STATE_INTERVAL = 1.0


@dataclass
class Sinks:
    """Where a run's messages go."""

    emitters: dict[str, Callable[[dict, str, int | None], None]]  # a record, in the main thread
    # A record to a finished RECORD line, in a worker (streams whose records need no main-thread work).
    render: dict[str, Callable[[dict, str, int | None], bytes]]
    write_line: Callable[[bytes], None] | None
    write_message: Callable[[dict], None]
    activate_versions: bool  # whether full reads end with ACTIVATE_VERSION


class Emission:
    def __init__(self, sinks: Sinks, state: State, summary: RunSummary, on_permission_error: str = "skip"):
        self.sinks = sinks
        self.state = state
        self.summary = summary
        self.on_permission_error = on_permission_error
        self._last_state = 0.0
        self.state_dirty = False

    def emit_segment(self, feed: Feed, segment: Segment, output: Rendered) -> None:
        extracted = rfc3339(int(time.time()))
        skipped = {m.spec.name for m in feed.root.walk() if m.skipped}
        write_line, version = self.sinks.write_line, feed.version
        for stream, _, payload, _ in output:
            if stream in skipped:
                continue
            if type(payload) is bytes:
                write_line(payload)
            else:
                emit = self.sinks.emitters[stream]
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
        self.state_dirty = True

    def finish(self, feed: Feed) -> None:
        """A feed's every segment was emitted: activate its table version if it has one."""
        if feed.resync:
            self.state.set(feed.name, feed.account, "resync", None)
            for member in feed.live_members():
                self.state.set(member.spec.name, feed.account, "created", feed.hi)
            if not feed.root.skipped:
                self.state.set(feed.name, feed.account, "version", feed.version)
                if feed.spec.event_types:  # every event before the run's bound is reflected now
                    self.state.set(feed.name, feed.account, "events", feed.hi)
        if feed.activate and feed.version is not None and self.sinks.activate_versions:
            for member in feed.live_members():
                self.sinks.write_message({"type": "ACTIVATE_VERSION", "stream": member.spec.name, "version": feed.version})
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
        if self.state_dirty and time.monotonic() - self._last_state >= STATE_INTERVAL:
            self.write_state()

    def write_state(self, force: bool = False) -> None:
        if self.state_dirty or force:
            self.sinks.write_message({"type": "STATE", "value": self.state.data})
            self.state_dirty = False
            self._last_state = time.monotonic()


def skip_reason(exc: StripeError) -> str:
    if isinstance(exc, reports.ReportFailed):
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
