"""The tap's own process, tuned for a run that starts, reads and ends: the garbage collector
kept away from what lives until the end, fewer malloc arenas, and an exit that does not wait
for worker threads. Only the standard library: `tap_stripe.tap` imports this module before
anything else, so that the collector is paused while the SDK's imports run."""

from __future__ import annotations

import gc
import os
import sys

_COLLECTOR = {"enabled_before_imports": True, "paused_until_run": False}


def pause_collector_for_imports() -> None:
    """Importing the SDK and what it imports makes some 80,000 objects that live as long as the
    process, and the garbage collector would walk them several times over while they are made
    (~40 ms of a run's start-up). Paused until `resume_collector_after_imports`."""
    _COLLECTOR["enabled_before_imports"] = gc.isenabled()
    gc.disable()


def resume_collector_after_imports() -> None:
    """The collector as it was before `pause_collector_for_imports`."""
    if _COLLECTOR["enabled_before_imports"]:
        gc.enable()


def hold_collector_until_run() -> None:
    """In the tap's own process (`tap_stripe.tap.cli`, not a library user's, e.g. a test's):
    what start-up makes (modules, the catalog, settings, streams) lives until the process ends,
    so the collector stays off until the run starts (`collector_for_run` freezes what exists
    then and turns it back on) and never walks them. `--about` and `--discover` end without it."""
    gc.freeze()
    gc.disable()
    _COLLECTOR["paused_until_run"] = True


def collector_for_run() -> None:
    """Called as the run starts. The catalog and schemas live for the whole run: take them out
    of the garbage collector's sight, and collect young objects less often (records are
    short-lived and acyclic), so collections do not keep re-walking them. In the tap's own
    process (`hold_collector_until_run`) the collector has been off since start-up, which
    leaves next to no garbage (a few hundred objects): no collection first."""
    if not _COLLECTOR["paused_until_run"]:
        gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    if _COLLECTOR["paused_until_run"]:
        _COLLECTOR["paused_until_run"] = False
        gc.enable()


def fewer_malloc_arenas() -> None:
    """glibc gives each worker thread its own malloc arena and keeps freed memory in each;
    two arenas keep the process's memory near what it actually holds (-30% peak RSS)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def exit_now(message: str, code: int = 1) -> None:
    """Print `message` (already redacted) as the tap's one error line and leave the process at
    once: worker threads may be mid-request; the state written so far is final."""
    print(f"tap-stripe: error: {message}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
