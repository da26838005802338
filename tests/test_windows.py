"""Window splitting: no object is read twice or skipped, whatever the density."""

import random

import pytest

from tap_stripe.windows import should_split, split_window


def fake_list(objects, lo, hi, after=None, limit=100):
    """Stripe's order (newest first) over [lo, hi)."""
    rows = sorted((o for o in objects if lo <= o["created"] < hi), key=lambda o: (-o["created"], o["id"]))
    return rows[:limit], len(rows) > limit


def read_all(objects, lo, hi):
    """What the engine does with windows: split dense ones, page one-second ones."""
    page, more = fake_list(objects, lo, hi)
    if not more:
        return page
    if not should_split(lo, hi, page, "created"):
        return sorted((o for o in objects if lo <= o["created"] < hi), key=lambda o: o["id"])
    split = split_window(lo, hi, page, "created")
    out = list(split.kept)
    for sub_lo, sub_hi in split.windows:
        out += read_all(objects, sub_lo, sub_hi)
    assert [w[0] for w in split.windows][0] == lo
    assert all(a[1] == b[0] for a, b in zip(split.windows, split.windows[1:])), "windows must be contiguous"
    return out


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", ["uniform", "bursty", "one_second"])
def test_split_reads_every_object_exactly_once(seed, shape):
    rng = random.Random(seed)
    if shape == "uniform":
        times = [rng.randrange(1_000, 100_000) for _ in range(3_000)]
    elif shape == "bursty":
        times = [rng.choice([5_000, 5_001, 70_000]) if rng.random() < 0.5 else rng.randrange(1_000, 100_000)
                 for _ in range(3_000)]
    else:
        times = [42_000] * 1_500 + [rng.randrange(1_000, 100_000) for _ in range(200)]
    objects = [{"id": f"ch_{i:05d}", "created": t} for i, t in enumerate(times)]
    got = read_all(objects, 0, 200_000)
    assert sorted(o["id"] for o in got) == sorted(o["id"] for o in objects)


def test_window_of_one_busy_last_second_is_set_apart():
    page = [{"id": f"x{i}", "created": 99} for i in range(100)]
    split = split_window(0, 100, page, "created")
    assert split.kept == []
    assert split.windows[-1] == (99, 100)
    assert split.windows[0][0] == 0
    assert split.estimate(0, 99) is None  # nothing measured: every object shared one second


def test_sub_windows_estimate_what_they_hold_at_the_first_page_density():
    rng = random.Random(3)
    objects = [{"id": f"ch_{i:05d}", "created": rng.randrange(0, 100_000)} for i in range(20_000)]
    page, _ = fake_list(objects, 0, 100_000)
    split = split_window(0, 100_000, page, "created")
    for lo, hi in split.windows:
        held = sum(1 for o in objects if lo <= o["created"] < hi)
        assert 0.5 * held <= split.estimate(lo, hi) <= 2 * held
