"""Reading events in a window (`read_window`) and keeping the newest per object
(`newest_per_object`), in-process against a fake `/v1/events`, so mutation testing sees them
(docs/mutation.md). The end-to-end behaviour is in test_engine.py."""

from itertools import pairwise
from types import SimpleNamespace

import pytest

from tap_stripe.events import EVENTS_PATH, newest_per_object, read_window
from tap_stripe.windows import split_window


class FakeEvents:
    """`GET /v1/events` over `events`: created and types filters, newest first, 100 a page."""

    def __init__(self, events):
        self.events = events
        self.requests = []

    def get(self, path, params, *, account, endpoint, stream):
        self.requests.append({"path": path, "params": list(params), "account": account, "endpoint": endpoint,
                              "stream": stream})
        assert path == EVENTS_PATH
        query = {}
        for k, v in params:
            query.setdefault(k, []).append(v)
        rows = [e for e in self.events
                if query["created[gte]"][0] <= e["created"] < query["created[lt]"][0] and e["type"] in query["types[]"]]
        rows.sort(key=lambda e: (-e["created"], e["id"]))
        if "starting_after" in query:
            rows = rows[[e["id"] for e in rows].index(query["starting_after"][0]) + 1:]
        limit = query["limit"][0]
        return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}


class Summary:
    def __init__(self):
        self.pages = []

    def page(self, stream):
        self.pages.append(stream)


def event(i, created, obj_id, type_="charge.updated"):
    return {"id": f"evt_{i:05d}", "type": type_, "created": created, "data": {"object": {"id": obj_id}}}


def setup(events, lo, hi, types=("charge.updated", "charge.refunded")):
    client = FakeEvents(events)
    run = SimpleNamespace(client=client, summary=Summary())
    feed = SimpleNamespace(name="charges", account="acct_1", events_types=list(types))
    segment = SimpleNamespace(lo=lo, hi=hi, types=list(types))
    return run, feed, segment, client


def test_a_window_is_read_to_its_end_in_ascending_order():
    events = [event(i, 1_000 + i, f"ch_{i % 7}") for i in range(250)]
    events.append(event(999, 1_100, "ch_x", "customer.updated"))  # another type: not asked for
    events.append(event(998, 2_000, "ch_y"))  # after the window
    run, feed, segment, client = setup(events, 1_000, 1_300)
    got, split = read_window(run, feed, segment)
    assert split is None
    assert [e["id"] for e in got] == [f"evt_{i:05d}" for i in range(250)]
    assert run.summary.pages == ["charges"] * 3
    first = client.requests[0]
    assert first["params"] == [("types[]", "charge.updated"), ("types[]", "charge.refunded"),
                               ("created[gte]", 1_000), ("created[lt]", 1_300), ("limit", 100)]
    assert first["account"] == "acct_1" and first["endpoint"] == EVENTS_PATH and first["stream"] == "charges"
    assert len(client.requests) == 3


def test_events_of_one_second_keep_their_order_across_pages():
    events = [event(i, 1_000 + i // 150, f"ch_{i}") for i in range(300)]  # two busy seconds
    run, feed, segment, _ = setup(events, 1_000, 1_002)
    got, split = read_window(run, feed, segment)
    assert split is None
    stripe_order = sorted(events, key=lambda e: (-e["created"], e["id"]))
    assert got == list(reversed(stripe_order))


def test_an_empty_window_reads_one_page():
    run, feed, segment, client = setup([event(1, 5_000, "ch_1")], 1_000, 2_000)
    assert read_window(run, feed, segment) == ([], None)
    assert run.summary.pages == ["charges"]
    assert len(client.requests) == 1


def test_a_dense_window_is_split_after_its_first_page():
    events = [event(i, 1_000 + i // 10, f"ch_{i}") for i in range(5_000)]  # 10 a second over [1000, 1500)
    run, feed, segment, client = setup(events, 0, 1_500)
    got, split = read_window(run, feed, segment)
    first_page = sorted(events, key=lambda e: (-e["created"], e["id"]))[:100]
    expected = split_window(0, 1_500, first_page, "created")
    assert split == expected
    assert got == list(reversed(expected.kept))
    assert got and all(a["created"] <= b["created"] for a, b in pairwise(got))
    assert len(client.requests) == 1 and run.summary.pages == ["charges"]


def test_newest_per_object_keeps_each_object_s_last_event_in_event_order():
    a1, b1, a2, c1, b2 = (event(1, 10, "a"), event(2, 11, "b"), event(3, 12, "a"), event(4, 13, "c"),
                          event(5, 14, "b"))
    assert newest_per_object([a1, b1, a2, c1, b2]) == [a2, c1, b2]
    assert newest_per_object([]) == []


@pytest.mark.parametrize("odd", [{"id": "e"}, {"id": "e", "data": None}, {"id": "e", "data": {}},
                                 {"id": "e", "data": {"object": None}}, {"id": "e", "data": {"object": {}}},
                                 {"id": "e", "data": {"object": {"id": ""}}}])
def test_events_without_an_object_id_are_left_out(odd):
    a = event(1, 10, "a")
    assert newest_per_object([odd, a, odd]) == [a]


def test_the_previous_attributes_of_an_object_s_events_are_kept_on_its_newest():
    a1, b1, a2, a3 = event(1, 10, "a"), event(2, 11, "b"), event(3, 12, "a"), event(4, 13, "a")
    a1["data"]["previous_attributes"] = {"items": ["si_1"]}
    a2["data"]["previous_attributes"] = {}
    a3["data"]["previous_attributes"] = {"items": ["si_2"], "status": "active"}
    before = [dict(e) for e in (a1, b1, a2, a3)]
    got = newest_per_object([a1, b1, a2, a3])
    assert got == [b1, {**a3, "_changes": [({"items": ["si_1"]}, {"id": "a"}),
                                            ({"items": ["si_2"], "status": "active"}, {"id": "a"})]}]
    assert [a1, b1, a2, a3] == before and "_changes" not in a3  # the events themselves are left alone
    a4 = event(5, 14, "c")
    a4["data"]["previous_attributes"] = {"x": 1}
    assert newest_per_object([a4, event(6, 15, "c")]) == [{**event(6, 15, "c"), "_changes": [({"x": 1}, {"id": "c"})]}]


def test_newest_per_object_by_key():
    a1, b1, a2 = event(1, 10, "a"), event(2, 11, "b"), event(3, 12, "a")
    by_parity = {"evt_00001": "odd", "evt_00002": None, "evt_00003": "odd"}
    assert newest_per_object([a1, b1, a2], key=lambda e: by_parity[e["id"]]) == [a2]
    assert newest_per_object([a1, b1, a2], key=lambda e: e["id"]) == [a1, b1, a2]


def test_update_events_of_objects_this_runs_list_read_are_redundant_but_deletions_never():
    from tap_stripe.events import _listed  # the rule itself, pinned
    from tap_stripe.streams import SPECS

    spec = SPECS["customers"]
    feed = SimpleNamespace(listed_from=1_000, hi=2_000)

    def ev(type_, created, **extra):
        return {"type": type_, "data": {"object": {"id": "cus_1", "created": created}}, **extra}

    assert _listed(feed, spec, ev("customer.updated", 1_000))
    assert _listed(feed, spec, ev("customer.updated", 1_999))
    assert not _listed(feed, spec, ev("customer.updated", 999))  # read by an earlier run only
    assert not _listed(feed, spec, ev("customer.updated", 2_000))  # after the run's bound
    assert not _listed(feed, spec, ev(spec.deleted_event, 1_500))  # a deletion: never redundant
    assert not _listed(feed, spec, ev("customer.updated", 1_500, _changes=[({"x": 1}, {})]))  # removed children
    assert not _listed(SimpleNamespace(listed_from=None, hi=2_000), spec, ev("customer.updated", 1_500))
