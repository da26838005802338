"""The SDK's METRIC log lines from the tap's own sync: `http_request_duration` for every
response and, per stream, `record_count` and `sync_duration` (`MeteredSummary`)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from singer_sdk import metrics

from tap_stripe.output.summary import RunSummary


def http_request_metric(logger: logging.Logger) -> Callable[[str, str, str | None, int, float], None]:
    """The client's `on_response`: the SDK's `http_request_duration` METRIC for every response
    (every attempt, retries included, as the SDK's request loop does) to `singer_sdk.metrics`
    at INFO. Tags: stream, endpoint (the path template), http_status_code, status, and the
    connected account as context. Never a header, URL or query."""

    def log(stream: str, endpoint: str, account: str | None, status: int, seconds: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        tags: dict[str, Any] = {"stream": stream} if stream else {}
        tags.update({"endpoint": endpoint, "http_status_code": status,
                     "status": metrics.Status.SUCCEEDED if status < 400 else metrics.Status.FAILED})
        if account:
            tags["context"] = {"account_id": account}
        metrics.log(logger, metrics.Point("timer", metrics.Metric.HTTP_REQUEST_DURATION, seconds, tags))

    return log


class MeteredSummary(RunSummary):
    """The run summary, also logging the SDK's `record_count` METRIC per stream (its
    `metrics.record_counter`: every 60 s while counting and once at the end) and one
    `sync_duration` per stream at the end. Records are counted where the engine counts them
    as written (`count`, main thread), under a lock."""

    def __init__(self, progress_interval: float = 10.0, record_metrics: bool = True):
        super().__init__(progress_interval)
        self.record_metrics = record_metrics
        self._counters: dict[str, metrics.Counter] = {}
        self._counters_lock = threading.Lock()

    def count(self, output: Sequence[tuple[str, str, object, int]], skipped: set[str]) -> None:
        super().count(output, skipped)
        if not self.record_metrics:
            return
        with self._counters_lock:
            for name, _, _, n in output:
                if n and name not in skipped:
                    counter = self._counters.get(name)
                    if counter is None:
                        counter = self._counters[name] = metrics.record_counter(name).__enter__()
                    counter.increment(n)

    def close_metrics(self, streams: list[str]) -> None:
        """The last record_count of every stream (0 for one that wrote none) and its sync_duration:
        seconds from the run's start to its last record (to the end if it wrote none)."""
        if not self.record_metrics:
            return
        end = time.time()
        status = metrics.Status.SUCCEEDED if self.outcome == "succeeded" else metrics.Status.FAILED
        logger = metrics.get_metrics_logger()
        with self._counters_lock:
            for name in sorted(set(streams) | set(self._counters)):
                counter = self._counters.pop(name, None) or metrics.record_counter(name)
                counter.exit()
                stats = self.streams.get(name)
                finished = stats.finished if stats is not None and stats.finished else end
                metrics.log(logger, metrics.Point("timer", metrics.Metric.SYNC_DURATION,
                                                  round(finished - self.started, 6),
                                                  {"stream": name, "pid": os.getpid(), "status": status}))
