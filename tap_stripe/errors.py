"""How a run stops early: a fatal error, or a signal asking it to stop at a safe point."""

from __future__ import annotations


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


class Stopped(Exception):
    """A fetch not done because the run is stopping: its segment is never written."""
