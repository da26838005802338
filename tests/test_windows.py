"""Window splitting: no object is read twice or skipped, whatever the density.

Besides the end-to-end property (every object read exactly once), the exact decisions are
pinned: when a window is split, where the sub-windows fall, and the density they are sized
from. Mutation testing (docs/mutation.md) showed that the property alone passes against a
tap that never splits, splits into overlapping or empty windows, or sends float bounds.
"""

import random

import pytest

from tap_stripe.engine.windows import (
    MAX_SPLIT,
    TARGET_RECORDS,
    Split,
    created_params,
    should_split,
    split_if_dense,
    split_window,
)


def fake_list(objects, lo, hi, after=None, limit=100):
    """Stripe's order (newest first) over [lo, hi)."""
    rows = sorted((o for o in objects if lo <= o["created"] < hi), key=lambda o: (-o["created"], o["id"]))
    return rows[:limit], len(rows) > limit


def read_all(objects, lo, hi, splits=None, fanout=None, requests=None):
    """What the engine does with windows: split dense ones, page the others (`fanout`: the
    window is open). `requests` collects the requests made, a count per window."""
    page, more = fake_list(objects, lo, hi)
    split = split_if_dense(lo, hi, {"data": page, "has_more": more}, "created", fanout=fanout)
    if split is None:
        rows = sorted((o for o in objects if lo <= o["created"] < hi), key=lambda o: o["id"])
        if requests is not None:
            requests.append(max(1, -(-len(rows) // 100)))
        return rows if more else page
    if requests is not None:
        requests.append(1)
    if splits is not None:
        splits.append(split)
    out = list(split.kept)
    for sub_lo, sub_hi in split.windows:
        assert type(sub_lo) is int and type(sub_hi) is int and sub_lo < sub_hi, split.windows
        out += read_all(objects, sub_lo, sub_hi, splits, split.fanout_of(sub_lo, sub_hi), requests)
    assert split.windows[0][0] == lo
    assert all(a[1] == b[0] for a, b in zip(split.windows, split.windows[1:])), "windows must be contiguous"
    oldest = page[-1]["created"]
    assert split.windows[-1][1] == oldest + 1, "sub-windows end just after the page's oldest second"
    assert all(o["created"] > oldest for o in split.kept)
    return out


def objects_of(shape, seed):
    rng = random.Random(seed)
    if shape == "uniform":
        times = [rng.randrange(1_000, 100_000) for _ in range(3_000)]
    elif shape == "bursty":
        times = [rng.choice([5_000, 5_001, 70_000]) if rng.random() < 0.5 else rng.randrange(1_000, 100_000)
                 for _ in range(6_000)]
    elif shape == "one_second":
        times = [42_000] * 1_500 + [rng.randrange(1_000, 100_000) for _ in range(200)]
    elif shape == "burst_on_top":  # the newest second alone holds more than a page
        times = [99_999] * 1_500 + [rng.randrange(1_000, 100_000) for _ in range(200)]
    else:  # "long_history": a dense recent day over a long, sparse past (geometric windows)
        times = [rng.randrange(99_000, 100_000) for _ in range(3_000)] + [rng.randrange(0, 99_000) for _ in range(100)]
    return [{"id": f"ch_{i:05d}", "created": t} for i, t in enumerate(times)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", ["uniform", "bursty", "one_second", "burst_on_top", "long_history"])
@pytest.mark.parametrize("hi", [100_000, 200_000], ids=["tight", "loose"])
def test_split_reads_every_object_exactly_once(seed, shape, hi):
    objects = objects_of(shape, seed)
    splits = []
    got = read_all(objects, 0, hi, splits)
    assert sorted(o["id"] for o in got) == sorted(o["id"] for o in objects)
    if hi == 100_000 and shape != "one_second":
        assert splits, "a window this dense must be split, or the property above tests nothing"


def page_of(times):
    """A first page (newest first) of objects created at `times`."""
    return [{"id": f"x{i:03d}", "created": t} for i, t in enumerate(sorted(times, reverse=True))]


def per_second(newest, count):
    """`count` objects, one a second, the newest at `newest`: density 1 when the window ends at newest + 1."""
    return page_of(range(newest - count + 1, newest + 1))


def test_window_of_one_busy_last_second_is_set_apart():
    page = [{"id": f"x{i}", "created": 99} for i in range(100)]
    split = split_window(0, 100, page, "created")
    assert split.kept == []
    assert split.windows[-1] == (99, 100)
    assert split.windows[0][0] == 0
    assert split.estimate(0, 99) is None  # nothing measured: every object shared one second
    # what lies before it is cut geometrically, the newest piece one second wide
    assert split.windows == [(0, 36), (36, 68), (68, 84), (84, 92), (92, 96), (96, 98), (98, 99), (99, 100)]


def test_a_one_second_window_split_directly_is_that_second():
    assert split_window(7, 8, page_of([7] * 100), "created").windows == [(7, 8)]


def test_sub_windows_estimate_what_they_hold_at_the_first_page_density():
    rng = random.Random(3)
    objects = [{"id": f"ch_{i:05d}", "created": rng.randrange(0, 100_000)} for i in range(20_000)]
    page, _ = fake_list(objects, 0, 100_000)
    split = split_window(0, 100_000, page, "created")
    assert len(split.windows) > 1
    assert split.windows[0][0] == 0 and split.windows[-1][1] == page[-1]["created"] + 1
    for lo, hi in split.windows:
        held = sum(1 for o in objects if lo <= o["created"] < hi)
        assert 0.5 * held <= split.estimate(lo, hi) <= 2 * held


def test_estimate_is_at_least_one_object():
    assert Split([], [], 0.001).estimate(0, 10) == 1
    assert Split([], [], 0.001).estimate(0, 10_000) == 10


def test_density_is_measured_from_the_oldest_object_on_the_page():
    page = per_second(999, 100)  # 900..999 in [0, 1000): 100 objects over 100 seconds
    split = split_window(0, 1000, page, "created")
    assert split.density == 1.0
    assert [o["created"] for o in split.kept] == list(range(999, 900, -1))  # all but the oldest second


def test_one_second_windows_are_never_split():
    assert should_split(5, 6, page_of([5] * 100), "created", target=10) is False
    assert should_split(0, 1, page_of([0] * 100), "created", target=10) is False


def test_two_second_windows_can_be_split():
    assert should_split(5, 7, page_of([6] * 100), "created", target=10) is True


def test_split_only_beyond_two_targets_of_remaining_objects():
    # density 1 (100 objects over the last 100 seconds); remaining = oldest + 1 - lo
    assert should_split(1_000, 3_099, per_second(3_098, 100), "created") is False  # exactly 2 * target remain
    assert should_split(1_000, 3_100, per_second(3_099, 100), "created") is True  # 2 * target + 1 remain


def test_a_page_in_the_last_second_measures_a_page_per_second():
    # 100 objects in [29, 30): density 100/s, so 3000 remain in [0, 30): worth splitting at target 1000
    assert should_split(0, 30, page_of([29] * 100), "created") is True
    assert should_split(0, 20, page_of([19] * 100), "created") is False


def test_split_if_dense_only_splits_a_dense_window_with_more_pages():
    lo, hi = 0, 1000
    page = per_second(999, 100)  # density 1: 901 remain
    assert split_if_dense(lo, hi, {"data": page, "has_more": False}, "created", target=10) is None
    assert split_if_dense(lo, hi, {"data": [], "has_more": True}, "created", target=10) is None
    assert split_if_dense(lo, hi, {"has_more": True}, "created", target=10) is None
    assert split_if_dense(lo, hi, {"data": page, "has_more": True}, "created") is None  # 901 < 2 * 1000
    split = split_if_dense(lo, hi, {"data": page, "has_more": True}, "created", target=10)
    assert split == split_window(lo, hi, page, "created", target=10)
    assert split.windows[-1] == (891, 901)  # sized for target 10: ten objects at density 1


def test_all_objects_in_one_second_below_the_top_is_one_sub_window():
    split = split_window(0, 100, page_of([50] * 100), "created")
    assert split.kept == []
    assert split.density == 2.0  # 100 objects in [50, 100)
    assert split.windows == [(0, 51)]  # 102 expected: one piece


def test_a_bounded_span_is_cut_into_equal_integer_pieces():
    lo = 1_000
    split = split_window(lo, 11_100, per_second(11_099, 100), "created")
    end = 11_001  # expected 10_001 objects: 11 pieces
    assert split.density == 1.0
    assert split.windows == [(lo + (end - lo) * i // 11, lo + (end - lo) * (i + 1) // 11) for i in range(11)]
    assert all(type(b) is int for w in split.windows for b in w)


def test_max_split_windows_still_are_equal_pieces():
    end = 99_901
    lo = end - MAX_SPLIT * TARGET_RECORDS  # expected exactly MAX_SPLIT * target
    split = split_window(lo, 100_000, per_second(99_999, 100), "created")
    assert split.windows == [(lo + TARGET_RECORDS * i, lo + TARGET_RECORDS * (i + 1)) for i in range(MAX_SPLIT)]


def widths_newest_first(windows):
    return [hi - lo for lo, hi in reversed(windows)]


def test_a_long_sparse_history_gets_doubling_windows():
    page = page_of([t for t in range(999_950, 1_000_000) for _ in range(2)])  # 2 objects/s over 50 s
    split = split_window(0, 1_000_000, page, "created")
    assert split.density == 2.0
    assert len(split.kept) == 98 and all(o["created"] > 999_950 for o in split.kept)
    assert split.windows[0][0] == 0 and split.windows[-1][1] == 999_951
    assert all(a[1] == b[0] for a, b in zip(split.windows, split.windows[1:]))
    widths = widths_newest_first(split.windows)
    assert widths[:-1] == [500 * 2 ** k for k in range(len(widths) - 1)]  # target / density, doubling
    assert 0 < widths[-1] <= 500 * 2 ** (len(widths) - 1)
    assert len(widths) == 11


def test_the_newest_geometric_window_is_at_least_a_second():
    page = page_of([999] * 50 + [998] * 50)  # 50 objects/s: target 10 is a fifth of a second
    split = split_window(0, 1000, page, "created", target=10)
    assert split.windows[-1] == (998, 999)
    assert widths_newest_first(split.windows)[:4] == [1, 2, 4, 8]


def test_geometric_windows_are_capped_and_the_oldest_reaches_lo():
    hi = 2 ** 80  # a span the doubling cannot cover in MAX_SPLIT windows
    split = split_window(0, hi, per_second(hi - 1, 100), "created")
    assert len(split.windows) == MAX_SPLIT - 1
    assert split.windows[0][0] == 0 and split.windows[-1][1] == hi - 99
    assert all(a[1] == b[0] for a, b in zip(split.windows, split.windows[1:]))
    widths = widths_newest_first(split.windows)
    assert widths[:-1] == [TARGET_RECORDS * 2 ** k for k in range(MAX_SPLIT - 2)]
    assert widths[-1] > TARGET_RECORDS * 2 ** (MAX_SPLIT - 2)  # stretched down to lo


def test_created_params():
    assert created_params(10, 20) == [("created[gte]", 10), ("created[lt]", 20)]
    assert created_params(None, 20) == [("created[lt]", 20)]
    assert created_params(10, None) == [("created[gte]", 10)]
    assert created_params(None, None) == []
    assert created_params(0, 0, "arrival_date") == [("arrival_date[gte]", 0), ("arrival_date[lt]", 0)]


# --------------------------------------------------------------------------- open windows
from collections import Counter

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tap_stripe.engine.windows import FANOUT_GROWTH, FIRST_FANOUT


def test_an_open_window_fans_out_below_its_first_page_then_leaves_the_rest_open():
    hi = 1_000_000
    page = [{"id": f"o{i}", "created": hi - 1 - i} for i in range(100)]  # one a second
    split = split_window(0, hi, page, "created", target=1000, fanout=2)
    end = hi - 100 + 1
    cut = end - 2000
    assert split.windows == [(0, cut), (cut, cut + 1000), (cut + 1000, end)]
    assert split.rest == (0, cut) and split.fanout == 2 * FANOUT_GROWTH
    assert split.estimate(0, cut) is None and split.estimate(cut, cut + 1000) == 1000
    assert split.fanout_of(0, cut) == 2 * FANOUT_GROWTH and split.fanout_of(cut, cut + 1000) is None
    # Not open: the density is trusted all the way down (geometric over such a span).
    assert split_window(0, hi, page, "created", target=1000).rest is None


def test_an_open_window_whose_near_part_reaches_lo_is_cut_in_equal_pieces():
    hi = 10_000
    page = [{"id": f"o{i}", "created": hi - 1 - i} for i in range(100)]
    split = split_window(hi - 1_500, hi, page, "created", target=1000, fanout=2)  # 1,401 s below the page
    assert split.rest is None and split.windows == [(8_500, 9_200), (9_200, 9_901)]


def test_an_open_window_whose_page_shares_one_second_leaves_the_rest_open():
    page = [{"id": f"o{i}", "created": 999} for i in range(100)]
    split = split_window(0, 1_000, page, "created", fanout=2)
    assert split.windows == [(0, 999), (999, 1_000)] and split.rest == (0, 999) and split.fanout == 2


def _small_stream_cost(count, history, seed):
    rng = random.Random(seed)
    hi = 1_790_000_000
    objects = [{"id": f"o{i:05d}", "created": hi - 1 - rng.randrange(history)} for i in range(count)]
    # A second holding a whole page is read again on its own (the one-second rule): its own cost.
    assume(max(Counter(o["created"] for o in objects).values(), default=0) < 100)
    requests: list[int] = []
    read = read_all(objects, 0, hi, fanout=FIRST_FANOUT, requests=requests)
    assert sorted(o["id"] for o in read) == sorted(o["id"] for o in objects)  # each once
    return sum(requests)


# Derandomized: the same 200 examples on every run, so a run never fails on an example another
# run did not draw; the one counterexample known is kept below as a known limit.
@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 1_000), st.integers(1, 400 * 86_400), st.integers(0, 2 ** 31))
def test_a_small_stream_read_from_the_beginning_costs_its_pages_plus_two_at_most(count, history, seed):
    assert _small_stream_cost(count, history, seed) <= max(1, -(-count // 100)) + 2


@pytest.mark.xfail(strict=True, reason="known limit: 962 objects in 430 s end just below the second fan-out, whose "
                                       "four windows come back empty (15 requests for 10 pages)")
def test_a_small_dense_stream_whose_data_ends_below_the_first_fan_out():
    assert _small_stream_cost(962, 430, 1999141) <= 12


def test_an_open_window_of_one_second_is_that_second_alone():
    page = [{"id": f"o{i}", "created": 999} for i in range(100)]
    split = split_window(999, 1_000, page, "created", fanout=2)
    assert split.kept == [] and split.windows == [(999, 1_000)] and split.rest is None


def test_an_open_window_denser_than_its_fan_out_cuts_one_second_below_its_page():
    page = [{"id": f"o{i}", "created": 999 - i // 50} for i in range(100)]  # 50 a second: 998, 999
    split = split_window(0, 1_000, page, "created", target=10, fanout=1)
    assert split.windows == [(0, 998), (998, 999)] and split.rest == (0, 998)
    # the cut at the window's own lo: nothing left open, the span below the page in equal pieces
    split = split_window(998, 1_000, page, "created", target=10, fanout=1)
    assert split.windows == [(998, 999)] and split.rest is None
