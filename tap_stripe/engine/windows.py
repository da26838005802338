"""Created-time windows: how a list is cut into pieces that can be fetched concurrently.

A window `[lo, hi)` asks for `created[gte]=lo&created[lt]=hi`. Its first page (100 objects,
newest first) either ends the window (`has_more` false) or tells how dense it is. A dense
window is split: the first page's objects created after its oldest second `c` are kept,
and `[lo, c + 1)` is cut into sub-windows of about ten pages each, sized from the first
page's density: equal pieces for a bounded span, or, over a long history, pieces that
double in width going back, so a long, sparse history costs a few requests, not one per
empty slice. A window estimated at a few pages is paged through rather than split: a
window costs one partial page, so fewer, fuller windows waste fewer requests. A window one second wide cannot be split
and is paged to its end. Objects of second `c` that were on the first page are dropped and
read again with their sub-window, so nothing is read twice and nothing is skipped.

A window whose lower end is not known to hold data (a first load or a re-read from
`start_date`, or from the beginning) is *open*: its first page says nothing of how far back
the data goes, so extrapolating its density to `lo` would cut years of empty windows for a
small stream. An open window fans out progressively instead: after its first page, `fanout`
windows of about ten pages each just below that page, then the rest of the span, again
open, with four times the fan-out. A small stream costs its pages plus one empty window at
most; a large one pages 1 + 4 + 16 windows at once three round trips after its first page
(with twice the fan-out, 1 + 2 + 4 + 8 + 16 took five: at 1 s of latency, two seconds of
the endpoint's rate each first load).

Windows are emitted in ascending order; the engine moves a bookmark to a window's `hi`
only after that window and every window before it were emitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

TARGET_RECORDS = 1000  # about ten pages per window: one partial page per ten full ones
MAX_SPLIT = 64  # equal pieces for spans up to this many windows (each a request, even if empty); beyond, geometric
FIRST_FANOUT = 1  # an open window's first split: this many windows of about TARGET_RECORDS, then the open rest
FANOUT_GROWTH = 4  # how much wider the open rest fans out than the split before it


@dataclass
class Split:
    """A dense window's answer: objects to keep (newest first) and the sub-windows before them."""

    kept: list[dict]
    windows: list[tuple[int, int]] = field(default_factory=list)
    density: float = 0.0  # objects per second measured on the first page
    rest: tuple[int, int] | None = None  # the open window among `windows`, if any
    fanout: int | None = None  # the rest's own fan-out

    def estimate(self, lo: int, hi: int) -> int | None:
        """Objects a sub-window `[lo, hi)` is expected to hold at the measured density
        (None when the page measured none: all its objects shared one second, or for the open rest)."""
        if not self.density or (lo, hi) == self.rest:
            return None
        return max(1, round(self.density * (hi - lo)))

    def fanout_of(self, lo: int, hi: int) -> int | None:
        return self.fanout if (lo, hi) == self.rest else None


def _density(hi: int, page: list[dict], created_field: str) -> float:
    """Objects per second near the top of a window, from its first page."""
    return len(page) / max(1, hi - page[-1][created_field])


def should_split(lo: int, hi: int, page: list[dict], created_field: str, target: int = TARGET_RECORDS) -> bool:
    """After a first page with has_more: is the rest worth cutting into concurrent windows,
    or is it cheaper to page through it?"""
    if hi - lo <= 1:
        return False
    remaining = _density(hi, page, created_field) * (page[-1][created_field] + 1 - lo)
    return remaining > 2 * target


def split_if_dense(lo: int, hi: int, first: dict, created_field: str, target: int = TARGET_RECORDS,
                   fanout: int | None = None) -> Split | None:
    """After a window's first page (the response body): its split when the rest is worth
    cutting into concurrent windows, else None (page through it). `fanout` marks an open window."""
    page = first.get("data") or []
    if first.get("has_more") and page and should_split(lo, hi, page, created_field, target):
        return split_window(lo, hi, page, created_field, target, fanout)
    return None


def split_window(lo: int, hi: int, page: list[dict], created_field: str, target: int = TARGET_RECORDS,
                 fanout: int | None = None) -> Split:
    """Split `[lo, hi)` after its first page `page` (newest first) came back with has_more."""
    oldest = page[-1][created_field]
    kept = [obj for obj in page if obj[created_field] > oldest]
    end = oldest + 1  # the sub-windows cover [lo, oldest] inclusive
    if end == hi and not kept:
        # Every object on the page shares the window's last second: set that second apart
        # so it is paged on its own, and split what lies before it.
        if fanout is not None:
            return Split(kept, [(lo, oldest), (oldest, end)] if lo < oldest else [(oldest, end)],
                         rest=(lo, oldest) if lo < oldest else None, fanout=fanout)
        return Split(kept, [*_geometric(lo, oldest, 1), (oldest, end)])
    density = _density(hi, page, created_field)
    expected = density * (end - lo)
    if fanout is not None:
        cut = end - max(1, math.ceil(fanout * target / density))
        if cut > lo:  # `fanout` windows just below the page, then the open rest
            return Split(kept, [(lo, cut), *_cut(cut, end, fanout)], density, rest=(lo, cut),
                         fanout=min(MAX_SPLIT, FANOUT_GROWTH * fanout))
    if expected <= MAX_SPLIT * target:  # a known, bounded span: equal pieces
        return Split(kept, _cut(lo, end, math.ceil(expected / target)), density)
    return Split(kept, _geometric(lo, end, max(1, int(target / density))), density)


def _cut(lo: int, hi: int, pieces: int) -> list[tuple[int, int]]:
    pieces = max(1, min(pieces, hi - lo))
    bounds = sorted({lo + (hi - lo) * i // pieces for i in range(pieces)} | {hi})
    return list(pairwise(bounds))


def _geometric(lo: int, hi: int, first: int) -> list[tuple[int, int]]:
    """Windows from `hi` back to `lo`, the newest `first` seconds wide, each older one twice
    as wide: dense recent data gets page-sized windows, sparse old history a few requests."""
    bounds = [hi]
    width = first
    while bounds[-1] > lo and len(bounds) < MAX_SPLIT:
        bounds.append(max(lo, bounds[-1] - width))
        width *= 2
    if bounds[-1] > lo:
        bounds[-1] = lo
    bounds.reverse()
    return list(pairwise(bounds))


def created_params(lo: int | None, hi: int | None, param: str = "created") -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = []
    if lo is not None:
        params.append((f"{param}[gte]", lo))
    if hi is not None:
        params.append((f"{param}[lt]", hi))
    return params
