"""The scheduler: which segments start fetching, on how many workers, within what memory.

Worker threads fetch segments, and the children of their records. How many segments are
fetched at once follows the run's rate budget and the latency it observes (Little's law:
requests in flight = rate × latency, with headroom), so a slow API gets more requests in
flight and a fast one fewer, growing and shrinking as latency changes; `max_workers` is only
an upper bound. They are shared between feeds by the rate each needs (`worker_shares`); a worker
with nothing to start takes over part of a window still being paged (`Scheduler.steal`).
Fetched but unwritten records are held to BUFFER_BYTES in all, shared between feeds.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from tap_stripe.api.client import StripeClient
from tap_stripe.engine.feeds import Feed, Paging, Segment, SegmentKind, SegmentResult

# Fetched-but-not-yet-written response bytes the run may hold, shared between its feeds.
# Records wait as serialised lines (about their JSON size), so memory stays flat whatever
# the volume.
BUFFER_BYTES = 128 << 20
STEAL_MIN_OBJECTS = 100  # a running window's unread part worth a second worker (Scheduler.steal)
AUTO_MAX_WORKERS = 256  # threads at most when `max_workers` is not set (started only when needed)
HEADROOM = 1.5  # requests in flight beyond rate × latency: jitter, parsing, the window ends
START_IN_FLIGHT = 4  # the adaptive limit's first ceiling (it doubles each measure the CPU allows)
MEASURE_SECONDS = 0.5  # how often the CPU share is measured and the ceiling moved
CPU_BOUND = 0.9  # share of one core (the interpreter's lock) from which the limit is cut
CPU_BUSY = 0.75  # share of one core from which the limit is held: more threads would mostly contend
STEAL_MIN_READ = 200  # objects a window must have read before its density is trusted for a steal
# Objects a feed's windows must have listed before it steals: a stream of fewer than ten pages
# costs at most its pages plus two requests, and a steal costs a partial page.
STEAL_MIN_LISTED = 1000


@dataclass
class FeedLoad:
    """What one feed holds and fetches (`Scheduler.schedule`): the bytes it holds (fetched and
    unwritten, and what its fetches in flight are expected to bring), its fetches in flight,
    the pages it has left to fetch, and the index of its first fetched segment."""

    held: int
    busy: int
    pages: int
    first_ready: int

    @classmethod
    def of(cls, feed: Feed) -> FeedLoad:
        load = cls(held=0, busy=0, pages=0, first_ready=len(feed.segments))
        for index, segment in enumerate(feed.segments):
            if segment.ready:
                load.held += segment.nbytes
                load.first_ready = min(load.first_ready, index)
                continue
            load.pages += feed.expected_pages(segment)
            if segment.future is not None and not segment.future.done():
                load.busy += 1
                load.held += feed.expected_bytes(segment)
        return load


class Scheduler:
    def __init__(self, client: StripeClient, max_workers: int | None,
                 clock: Callable[[], float] = time.monotonic, cpu_clock: Callable[[], float] = time.process_time):
        self.client = client
        self.max_workers = max_workers or AUTO_MAX_WORKERS
        self.executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="stripe")
        self.paging = Paging()
        self.clock, self.cpu_clock = clock, cpu_clock
        self._mark = (clock(), cpu_clock())  # where the CPU share is measured from
        self._cap = START_IN_FLIGHT  # what the limit may reach until the next measure
        self._last = START_IN_FLIGHT  # the limit last given
        self.running = 0  # tasks submitted and not ended (under the paging lock)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on a worker. Its end wakes the main loop (`Paging.wake`), which so
        waits on one future, not on every running one (`concurrent.futures.wait` over ~150
        futures locks each of them, every time the loop sleeps)."""
        future = self.executor.submit(fn, *args)
        with self.paging.lock:
            self.running += 1
        future.add_done_callback(self._ended)
        return future

    def _ended(self, _future: Future) -> None:
        with self.paging.lock:
            self.running -= 1
            self.paging.notify()

    def in_flight_limit(self) -> int:
        """Segments to fetch at once: what the global rate needs at the observed latency, grown
        at most twofold each half second while the process has CPU to spare, held while it is
        busy, and cut by a fifth while it is CPU-bound: more threads then only contend for the
        interpreter (against an API without latency, 5,000 and 60,000 charges cost 30.5 µs of
        CPU per extra record when the limit grew to 8 and fell back, 26.9 µs held at 4)."""
        limiter = self.client.limiter
        needed = math.ceil(limiter.global_rate * max(0.01, self.client.latency) * HEADROOM) + 2
        now, cpu = self.clock(), self.cpu_clock()
        if now - self._mark[0] >= MEASURE_SECONDS:
            busy = (cpu - self._mark[1]) / (now - self._mark[0])
            if busy >= CPU_BOUND:
                self._cap = max(START_IN_FLIGHT, int(self._last * 0.8))
            elif busy < CPU_BUSY:
                self._cap = 2 * self._last
            else:
                self._cap = max(START_IN_FLIGHT, self._last)
            self._mark = (now, cpu)
        self._last = max(2, min(self.max_workers, needed, self._cap))
        return self._last

    def schedule(self, active: list[Feed], fetch: Callable[[Feed, Segment], SegmentResult]) -> None:
        """Start fetches, earliest segments of every feed first.

        At most `in_flight_limit()` at once. Each feed gets the workers its share of the rate
        budget needs (`worker_shares`) and
        a share of BUFFER_BYTES (fetched but unwritten) in proportion to them, so memory
        stays bounded. The segments before a feed's first fetched one may start whatever its
        buffer holds: they are what the buffered windows wait for. A feed's head segment may
        always start, so every feed keeps moving.
        """
        loads = {id(feed): FeedLoad.of(feed) for feed in active}
        limit = self.in_flight_limit()
        slots = limit - sum(load.busy for load in loads.values())
        if slots <= 0:
            return
        limiter = self.client.limiter
        workers = worker_shares({key: load.pages for key, load in loads.items()}, limiter.endpoint_rate,
                                limiter.global_rate, self.client.latency, limit)
        slots = self.start_segments(active, fetch, loads, workers, slots, ahead=max(2, limit))
        for feed in active:
            key = id(feed)
            if slots > 0 and loads[key].busy < workers[key] and all(s.future or s.ready for s in feed.segments) \
                    and self.steal(feed, fetch):
                slots -= 1

    def start_segments(self, active: list[Feed], fetch: Callable[[Feed, Segment], SegmentResult],
                       loads: dict[int, FeedLoad], workers: dict[int, int], slots: int, ahead: int) -> int:
        """Start the segments not started among the first `ahead` of each feed, earliest first,
        within `slots` and each feed's workers and buffer share (`schedule`); the slots left."""
        total_workers = max(1, sum(workers.values()))
        candidates = [(index, feed, segment) for feed in active
                      for index, segment in enumerate(itertools.islice(feed.segments, ahead))
                      if segment.future is None and not segment.ready]
        candidates.sort(key=lambda c: c[0])
        for index, feed, segment in candidates:
            key = id(feed)
            load = loads[key]
            expected = feed.expected_bytes(segment)
            share = BUFFER_BYTES * workers[key] // total_workers
            if index > 0 and (slots <= 0 or load.busy >= workers[key] or
                              (index > load.first_ready and load.held + expected > share)):
                continue
            load.held += expected
            load.busy += 1
            slots -= 1
            segment.future = self.submit(fetch, feed, segment)
        return slots

    def steal(self, feed: Feed, fetch: Callable[[Feed, Segment], SegmentResult]) -> bool:
        """Give an idle worker half of the longest window still being paged.

        Paging a window is a chain of requests, one after the other. When a feed has no
        window left to start, the older half of the unread part of its longest running
        window becomes a window of its own, so the feed's last windows do not leave its
        share of the rate unused while they page to their ends. The running window stops at
        the new boundary; the new one goes before it in output order. A feed that has listed
        fewer than STEAL_MIN_LISTED objects does not steal: a steal costs a partial page, and
        a stream of fewer than ten pages costs at most its pages plus two requests.
        """
        if feed.listed < STEAL_MIN_LISTED:
            return False
        best: Segment | None = None
        best_left: float = STEAL_MIN_OBJECTS
        for segment in feed.segments:
            lo, hi, reached = segment.lo, segment.hi, segment.reached
            if segment.kind != SegmentKind.WINDOW or segment.ready or reached is None or segment.closed or \
                    lo is None or hi is None:
                continue
            if segment.read < STEAL_MIN_READ:  # a density measured on one page is too rough to act on
                continue
            # Objects left, at the density read so far.
            left = segment.read * (reached - lo) / max(1, hi - reached)
            if left >= best_left and reached - lo >= 2:
                best, best_left = segment, left
        if best is None:
            return False
        with self.paging.lock:  # the worker may have moved on since the scan
            lo, reached = best.lo, best.reached
            if best.closed or lo is None or reached is None or reached - lo < 2:
                return False
            middle = lo + (reached - lo) // 2
            best.lo = middle
        stolen = Segment(SegmentKind.WINDOW, lo, middle, estimate=round(best_left / 2))
        feed.segments.insert(feed.segments.index(best), stolen)
        stolen.future = self.submit(fetch, feed, stolen)
        return True


def worker_shares(remaining: dict[Any, int], endpoint_rate: float, global_rate: float, latency: float,
                  limit: int) -> dict[Any, int]:
    """Workers per feed, from the pages each still has to fetch.

    The run cannot end before its largest feed has fetched its pages at the endpoint rate,
    nor before all pages went through at the global rate. Each feed is paced to finish by
    then, at pages ÷ that time requests per second, which needs about rate × latency
    requests in flight, with a margin for jitter and parsing. A feed that sets the run's
    length so gets its endpoint's whole rate, and the smaller ones share what remains of
    the global rate instead of slowing it down. Shares are scaled down to `limit`.
    """
    latency = max(0.01, latency)
    finish = max(max(remaining.values(), default=0) / endpoint_rate, sum(remaining.values()) / global_rate, 1e-9)
    workers = {key: math.ceil(pages / finish * latency * 1.5) + 1 for key, pages in remaining.items()}
    total = sum(workers.values())
    if total > limit:
        workers = {key: max(1, n * limit // total) for key, n in workers.items()}
    return workers
