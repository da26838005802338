"""Paging a created-time window (`Fetcher._list_window`), in-process against a fake list:
each page is handed over as it arrives with what writing it completes (`written_from`), a
window shared with another worker (`Scheduler.steal` raised its `lo`) leaves out what that
worker reads, and a dense window is split after its first page, sized from that page."""

from __future__ import annotations

import pytest
from test_engine_bookmarks import make_run, planned

from tap_stripe.engine.feeds import Segment
from tap_stripe.errors import Stopped


class Lister:
    """`GET <list>` over `objects` (newest first, 100 a page, created filters, starting_after);
    each object counts `_bytes` (100 unless given) towards the bytes received."""

    def __init__(self, objects, on_get=None):
        self.objects = sorted(objects, key=lambda o: (-_at(o), o["id"]))
        self.on_get = on_get
        self.requests = []
        self._received = 0

    def get(self, path, params, *, account, endpoint, stream):
        self.requests.append({"path": path, "params": list(params), "account": account, "endpoint": endpoint,
                              "stream": stream})
        if self.on_get:
            self.on_get(len(self.requests))
        query = dict(params)
        rows = [o for o in self.objects if query.get("created[gte]", 0) <= _at(o) < query["created[lt]"]]
        if "starting_after" in query:
            rows = rows[[o["id"] for o in rows].index(query["starting_after"]) + 1:]
        page = rows[:query["limit"]]
        self._received += sum(o.get("_bytes", 100) for o in page)
        return {"object": "list", "data": page, "has_more": len(rows) > len(page)}

    def received(self):
        return self._received


def _at(obj):
    """Where an object sorts and filters: its created time, or `_at` for one without."""
    return obj["created"] if isinstance(obj.get("created"), int) else obj["_at"]


class Shaper:
    def shape(self, obj, account, updated_at=None):
        return {"id": obj["id"], "created": obj["created"], "account": account}


def fetcher_for(objects, name="charges", on_get=None, account="acct_1"):
    run = make_run(selected=(name,))
    run.fetcher.client = Lister(objects, on_get)
    run.planner.scope.shapers = {name: Shaper()}
    feed = planned(run, name, account)
    return run, feed


def spread(lo, n, step, **extra):
    return [{"id": f"ch_{i:04d}", "created": lo + i * step, **extra} for i in range(n)]


def ids(part):
    return [r["id"] for _, _, records, _ in part.rendered for r in records]


def test_a_window_is_paged_through_and_each_page_handed_over_with_what_writing_it_completes():
    objects = spread(1_000, 250, 10)
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 5_000)
    wakes = []
    run.fetcher.paging.notify = lambda: wakes.append(len(segment.parts))
    result = run.fetcher.fetch(feed, segment)
    newest_first = sorted(objects, key=lambda o: -o["created"])
    assert [ids(p) for p in segment.parts] == [[o["id"] for o in reversed(newest_first[i:i + 100])]
                                             for i in (0, 100, 200)]
    # the first page makes everything from its oldest object's next second up complete
    assert [p.written_from for p in segment.parts] == [newest_first[99]["created"] + 1,
                                                       newest_first[199]["created"] + 1, 1_000]
    assert all(p.rendered[0][:2] == ("charges", "new") and p.rendered[0][3] == len(ids(p)) for p in segment.parts)
    assert segment.parts[0].rendered[0][2][0]["account"] == "acct_1"
    assert segment.closed and segment.reached == newest_first[199]["created"] and segment.read == 200
    assert (result.objects, result.rendered, result.pending, result.split, result.output) == \
        (250, True, None, None, [])
    assert feed.listed == 250
    assert wakes == [0, 1, 2, 3]  # shareable once it pages; a page to write, each time
    first = run.fetcher.client.requests[0]
    assert first["params"][-3:] == [("created[gte]", 1_000), ("created[lt]", 5_000), ("limit", 100)]
    assert (first["path"], first["account"], first["endpoint"], first["stream"]) == \
        ("/v1/charges", "acct_1", "/v1/charges", "charges")
    assert len(run.fetcher.client.requests) == 3


def test_an_empty_window_is_one_empty_page_that_completes_it():
    run, feed = fetcher_for([])
    segment = Segment("window", 1_000, 5_000)
    result = run.fetcher.fetch(feed, segment)
    assert [(p.rendered, p.written_from) for p in segment.parts] == [([], 1_000)]
    assert segment.closed and segment.reached is None and result.objects == 0


def test_a_window_shared_with_another_worker_leaves_out_what_that_worker_reads():
    objects = spread(1_000, 300, 10)  # 1_000 .. 3_990
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 5_000)

    def steal(request):
        if request == 2:  # while the second page is being read, another worker takes [1_000, 2_050)
            segment.lo = 2_050

    run.fetcher.client.on_get = steal
    run.fetcher.fetch(feed, segment)
    assert len(segment.parts) == 2 and segment.closed
    second = segment.parts[1]
    assert ids(second)[0] == "ch_0105" and len(ids(second)) == 95  # created 2_050 kept
    assert second.written_from == 2_050
    assert len(run.fetcher.client.requests) == 2


def test_a_steal_at_the_oldest_second_of_a_page_lets_paging_go_on():
    objects = spread(1_000, 300, 10)
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 5_000)
    boundary = sorted(objects, key=lambda o: -o["created"])[199]["created"]  # the second page's oldest

    def steal(request):
        if request == 2:
            segment.lo = boundary

    run.fetcher.client.on_get = steal
    run.fetcher.fetch(feed, segment)
    assert len(run.fetcher.client.requests) == 3
    assert [len(ids(p)) for p in segment.parts] == [100, 100, 0]
    assert [p.written_from for p in segment.parts][1:] == [boundary + 1, boundary]


def test_objects_without_a_created_time_count_as_at_the_window_s_lo():
    objects = spread(2_000, 250, 10)
    objects[50] = {"id": "ch_none", "created": None, "_at": objects[50]["created"]}  # the second page's last
    objects[10] = {"id": "ch_gone", "created": None, "_at": objects[10]["created"]}
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 5_000)
    run.fetcher.client.on_get = lambda request: setattr(segment, "lo", 2_050) if request == 3 else None
    run.fetcher.fetch(feed, segment)
    assert [p.written_from for p in segment.parts] == [objects[150]["created"] + 1, 1_000 + 1, 2_050]
    assert "ch_gone" in ids(segment.parts[2]) and "ch_0004" not in ids(segment.parts[2])
    assert "ch_0005" in ids(segment.parts[2])


def test_objects_that_may_still_change_mark_the_window_s_oldest_pending_time():
    objects = [{"id": f"txn_{i:03d}", "created": 1_000 + i * 10, "status": "pending" if i in (30, 150) else "available"}
               for i in range(200)]
    run, feed = fetcher_for(objects, "balance_transactions")
    segment = Segment("window", 1_000, 5_000)
    result = run.fetcher.fetch(feed, segment)
    assert [p.pending for p in segment.parts] == [1_000 + 1_500, 1_000 + 300]
    assert result.pending == 1_000 + 300
    objects[150]["status"] = "available"
    run, feed = fetcher_for(objects, "balance_transactions")
    result = run.fetcher.fetch(feed, Segment("window", 1_000, 5_000))
    assert result.pending == 1_000 + 300


def test_a_stopped_run_fetches_no_further_page():
    run, feed = fetcher_for(spread(1_000, 250, 10))
    segment = Segment("window", 1_000, 5_000)
    run.fetcher.client.on_get = lambda request: run.stop.set() if request == 1 else None
    with pytest.raises(Stopped):
        run.fetcher.fetch(feed, segment)
    assert segment.parts == [] and len(run.fetcher.client.requests) == 1


def test_a_dense_window_is_split_after_its_first_page_and_keeps_its_newest_objects():
    objects = spread(1_000, 5_000, 1)  # one a second
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 6_000)
    result = run.fetcher.fetch(feed, segment)
    assert result.split is not None and result.objects == 100
    assert len(run.fetcher.client.requests) == 1 and segment.parts == []
    newest = sorted(objects, key=lambda o: -o["created"])[:99]  # the oldest second of the page is re-read
    assert [r["id"] for _, _, records, _ in result.output for r in records] == [o["id"] for o in reversed(newest)]
    assert feed.listed == 0


@pytest.mark.parametrize(("sizes", "left", "splits"), [
    ((100,) * 100, 1_500, False),  # a thousand small objects to a window: 1,500 left is paged through
    ((100,) * 100, 2_002, True),
    ((4_096,) * 100, 1_500, True),  # large objects: 512 to a window
    ((8_192, 8_193) * 50, 511, False),  # 8,192.5 bytes an object: 8,192 measured, 256 to a window
    ((8_192,) * 100, 513, True),
])
def test_a_window_is_sized_from_the_objects_of_its_first_page(sizes, left, splits):
    hi = 100_000
    page = [{"id": f"ch_{i:03d}", "created": hi - 1 - i, "_bytes": size} for i, size in enumerate(sizes)]
    oldest = hi - len(sizes)  # one object a second
    lo = oldest + 1 - left  # `left` objects expected at or below the page's oldest second
    below = [{"id": f"old_{i}", "created": lo + i} for i in range(5)]
    run, feed = fetcher_for(page + below)
    run.fetcher.client._received = 1_000_000  # what the thread received before: not this page's
    result = run.fetcher.fetch(feed, Segment("window", lo, hi))
    assert (result.split is not None) is splits


def test_a_steal_below_a_page_s_last_object_only_leaves_that_object_out():
    objects = spread(1_000, 300, 10)
    run, feed = fetcher_for(objects)
    segment = Segment("window", 1_000, 5_000)
    run.fetcher.client.on_get = lambda request: setattr(segment, "lo", 2_005) if request == 2 else None
    run.fetcher.fetch(feed, segment)
    assert len(run.fetcher.client.requests) == 2 and segment.closed
    assert ids(segment.parts[1])[0] == "ch_0101" and len(ids(segment.parts[1])) == 99


def test_pages_are_counted_for_their_stream():
    run, feed = fetcher_for(spread(1_000, 250, 10))
    run.fetcher.fetch(feed, Segment("window", 1_000, 5_000))
    assert run.summary.stream("charges").pages == 3
    run, feed = fetcher_for(spread(1_000, 5_000, 1))
    run.fetcher.fetch(feed, Segment("window", 1_000, 6_000))  # split after its first page
    assert run.summary.stream("charges").pages == 1


def test_records_carry_the_feed_s_version_and_their_children_s_fetches():
    run = make_run(selected=("customers", "customer_tax_ids"))
    run.fetcher.client = Lister([{"id": "cus_1", "object": "customer", "created": 1_500}])
    run.planner.scope.shapers = {"customers": Shaper(), "customer_tax_ids": Shaper()}
    run.fetcher.render = {"customers": lambda record, extracted, version: f"{record['id']}@{version}\n".encode()}
    feed = planned(run, "customers")
    feed.version = 42
    segment = Segment("window", 1_000, 5_000)
    run.fetcher.fetch(feed, segment)
    (part,) = segment.parts
    assert part.rendered == [("customers", "new", b"cus_1@42\n", 1)]
    assert len(part.subs) == 1 and len(run.scheduler.executor.submitted) == 1


def test_a_window_of_a_stream_created_at_its_date_is_paged_by_that_field():
    objects = [{"id": f"ii_{i:03d}", "created": None, "_at": 1_000 + i * 10, "date": 1_000 + i * 10}
               for i in range(150)]
    run, feed = fetcher_for(objects, "invoice_items")
    segment = Segment("window", 1_000, 5_000)
    run.fetcher.client.on_get = lambda request: setattr(segment, "lo", 1_205) if request == 2 else None
    run.fetcher.fetch(feed, segment)
    assert [p.written_from for p in segment.parts] == [objects[50]["date"] + 1, 1_205]
    assert segment.reached == objects[50]["date"]


def test_an_open_window_is_split_into_its_fan_out_and_an_open_rest():
    objects = spread(1_000, 5_000, 1)
    run, feed = fetcher_for(objects)
    result = run.fetcher.fetch(feed, Segment("window", 0, 6_000, fanout=1))
    assert result.split.rest is not None and result.split.rest[0] == 0
    run, feed = fetcher_for(objects)
    assert run.fetcher.fetch(feed, Segment("window", 0, 6_000)).split.rest is None
