"""What a run did, per stream: progress lines while it runs, a summary when it ends.

Progress goes to the `tap_stripe` logger (stderr) every `progress_interval_seconds`: per
active stream, records so far, records/s, how far through its created-time range the
stream is, and an estimate of the time left. The summary counts records (new, updated,
deleted), schemas sent, requests, pages, retries, 429s, skips with their reason and
durations; it is printed as a table on stderr and, with `summary_file`, written as JSON.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

LOGGER = logging.getLogger("tap_stripe")


@dataclass
class StreamStats:
    new: int = 0
    updated: int = 0
    deleted: int = 0
    schemas: int = 0
    requests: int = 0
    pages: int = 0
    retries: int = 0
    throttled: int = 0
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    started: float | None = None
    finished: float | None = None

    @property
    def records(self) -> int:
        return self.new + self.updated + self.deleted


class RunSummary:
    def __init__(self, progress_interval: float = 10.0):
        self.streams: dict[str, StreamStats] = {}
        self.started = time.time()
        self.progress_interval = progress_interval
        self._last_progress = time.monotonic()
        self._lock = threading.Lock()
        self.outcome = "running"

    def stream(self, name: str) -> StreamStats:
        stats = self.streams.get(name)
        if stats is None:
            with self._lock:
                stats = self.streams.setdefault(name, StreamStats())
        return stats

    def count(self, output: Sequence[tuple[str, str, object, int]], skipped: set[str]) -> None:
        """Count a segment's written records by kind: new, updated or deleted."""
        now = time.time()
        for name, kind, _, count in output:
            if name in skipped or not count:
                continue
            stats = self.stream(name)
            if stats.started is None:
                stats.started = now
            stats.finished = now
            setattr(stats, str(kind), getattr(stats, str(kind)) + count)

    def page(self, name: str) -> None:
        stats = self.stream(name)
        with self._lock:
            stats.pages += 1

    def schema(self, name: str) -> None:
        self.stream(name).schemas += 1

    def skip(self, name: str, account: str | None, reason: str) -> None:
        self.stream(name).skipped.append(f"{account}: {reason}" if account else reason)

    def note(self, name: str, text: str) -> None:
        self.stream(name).notes.append(text)

    def progress(self, feeds: Iterable[Any], force: bool = False) -> None:
        if self.progress_interval <= 0:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < self.progress_interval:
            return
        self._last_progress = now
        for feed in feeds:
            if not feed.segments:
                continue
            stats = self.stream(feed.name)
            if not stats.records:
                continue  # nothing to say yet
            elapsed = max(1e-6, time.time() - (stats.started or self.started))
            rate = stats.records / elapsed
            line = f"progress: {feed.label()}: {stats.records:,} records, {rate:,.0f} records/s"
            start = feed.progress_lo
            if start is not None and feed.emitted_hi is not None and feed.hi > start:
                share = min(1.0, max(0.0, (feed.emitted_hi - start) / (feed.hi - start)))
                line += f", {share:.0%} of its time range"
                if share > 0:
                    line += f", about {_duration(elapsed * (1 - share) / share)} left"
            LOGGER.info(line)

    def merge_client_stats(self, stats: Any) -> None:
        for source, attr in ((stats.requests, "requests"), (stats.retries, "retries"),
                             (stats.throttled, "throttled")):
            for name, value in source.items():
                if name:
                    setattr(self.stream(name), attr, value)

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "started": self.started,
            "duration_seconds": round(time.time() - self.started, 3),
            "streams": {
                name: {**{k: v for k, v in asdict(s).items() if k not in ("started", "finished")},
                       "records": s.records,
                       "duration_seconds": round((s.finished or 0) - (s.started or 0), 3) if s.started else 0}
                for name, s in sorted(self.streams.items())
            },
        }

    def table(self) -> str:
        header = ("stream", "new", "updated", "deleted", "schemas", "requests", "pages", "retries",
                  "429s", "seconds", "skipped / notes")
        rows = []
        for name, data in self.as_dict()["streams"].items():
            rows.append((name, data["new"], data["updated"], data["deleted"], data["schemas"],
                         data["requests"], data["pages"], data["retries"], data["throttled"],
                         f"{data['duration_seconds']:.1f}", "; ".join(data["skipped"] + data["notes"])))
        widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(str(v).ljust(w) if i in (0, 10) else str(v).rjust(w)
                           for i, (v, w) in enumerate(zip(row, widths))).rstrip() for row in [header, *rows]]
        total = sum(s.records for s in self.streams.values())
        lines.append(f"run {self.outcome}: {total:,} records in {time.time() - self.started:.1f}s")
        return "\n".join(lines)

    def write(self, path: str | None) -> None:
        if path:
            with open(path, "w") as handle:
                json.dump(self.as_dict(), handle, indent=2)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
