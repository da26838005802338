"""Stripe list paging (`tap_stripe.api.pagination`), in-process against a fake list: the query of
each page, where a list ends, a cursor that loops, and a cursor object deleted mid-run (Stripe
answers 404 for `starting_after`: paging goes on from the object before it)."""

from __future__ import annotations

import pytest

from tap_stripe.api.client import StripeError
from tap_stripe.api.pagination import PAGE_SIZE, earlier_cursors, get_page, list_pages, next_cursor, page_query


class Pages:
    """`GET` over `ids` (newest first), `limit` a page; ids in `deleted` answer 404 as a cursor."""

    def __init__(self, ids, deleted=(), error=None):
        self.ids = list(ids)
        self.deleted = set(deleted)
        self.error = error
        self.requests = []

    def get(self, path, params, *, account, endpoint, stream):
        self.requests.append((path, list(params), account, endpoint, stream))
        if self.error is not None:
            raise self.error
        query = dict(params)
        cursor = query.get("starting_after")
        if cursor in self.deleted:
            raise StripeError("No such object", status=404, error={"param": "starting_after"})
        rows = self.ids[self.ids.index(cursor) + 1:] if cursor is not None else self.ids
        rows = [i for i in rows if i not in self.deleted]
        limit = query.get("limit", len(rows))
        return {"data": [{"id": i} for i in rows[:limit]], "has_more": len(rows) > limit}


def ids_of(bodies):
    return [o["id"] for body in bodies for o in body["data"]]


def test_a_page_s_query_is_the_list_s_parameters_the_page_size_and_the_cursor():
    assert PAGE_SIZE == 100
    params = [("created[gte]", 5)]
    assert page_query(params, None) == [("created[gte]", 5), ("limit", 100)]
    assert page_query(params, "ch_1") == [("created[gte]", 5), ("limit", 100), ("starting_after", "ch_1")]
    assert page_query(params, "ch_1", paginated=False) == [("created[gte]", 5)]
    assert params == [("created[gte]", 5)]


def test_the_next_cursor_is_the_last_id_of_a_page_with_more():
    seen: set[str] = set()
    assert next_cursor({"data": [{"id": "a"}, {"id": "b"}], "has_more": True}, seen, stream="s", path="/p") == "b"
    assert seen == {"b"}
    assert next_cursor({"data": [{"id": "c"}], "has_more": False}, seen, stream="s", path="/p") is None
    assert next_cursor({"data": [{"id": "c"}]}, seen, stream="s", path="/p") is None
    assert next_cursor({"data": [{"id": "c"}], "has_more": True}, seen, stream="s", path="/p", paginated=False) is None
    with pytest.raises(StripeError) as raised:
        next_cursor({"data": [], "has_more": True}, seen, stream="charges", path="/v1/charges")
    assert str(raised.value) == ("stream charges: GET /v1/charges said has_more with an empty page; "
                                 "stopping instead of looping")
    assert raised.value.path == "/v1/charges"
    with pytest.raises(StripeError) as raised:
        next_cursor({"data": None, "has_more": True}, seen, stream="charges", path="/v1/charges")
    with pytest.raises(StripeError) as raised:
        next_cursor({"data": [{"id": "b"}], "has_more": True}, seen, stream="charges", path="/v1/charges")
    assert str(raised.value) == ("stream charges: GET /v1/charges returned cursor b twice; "
                                 "stopping instead of looping")
    assert raised.value.path == "/v1/charges"


def test_the_cursors_to_fall_back_on_are_the_page_s_other_objects_nearest_first_then_the_previous_cursor():
    body = {"data": [{"id": "a"}, {"id": ""}, {"x": 1}, {"id": "b"}, {"id": "c"}]}
    assert earlier_cursors(body, "z") == ["b", "a", "z"]
    assert earlier_cursors(body, None) == ["b", "a"]
    assert earlier_cursors({"data": None}, "z") == ["z"]
    assert earlier_cursors({}, None) == []


def test_a_deleted_cursor_object_is_replaced_by_the_one_before_it():
    client = Pages(["e", "d", "c", "b", "a"], deleted={"c", "d"})
    earlier = ["d", "e", "z"]
    body = get_page(client, "/v1/x", [("p", 1)], "c", earlier, account="acct_1", endpoint="/v1/x", stream="x")
    assert ids_of([body]) == ["b", "a"]
    assert earlier == ["z"]  # consumed
    assert [r[1][-1] for r in client.requests] == [("starting_after", "c"), ("starting_after", "d"),
                                                   ("starting_after", "e")]
    assert client.requests[0][0] == "/v1/x" and client.requests[0][2:] == ("acct_1", "/v1/x", "x")
    assert client.requests[0][1][:2] == [("p", 1), ("limit", 100)]


@pytest.mark.parametrize("error", [
    StripeError("gone", status=404, error={"param": "starting_after"}),  # nothing to fall back on
    StripeError("bad", status=400, error={"param": "starting_after"}),
    StripeError("gone", status=404, error={"param": "customer"}),
    StripeError("gone", status=404),
])
def test_other_errors_are_raised(error):
    earlier = [] if error.status == 404 and error.error.get("param") == "starting_after" else ["b"]
    with pytest.raises(StripeError):
        get_page(Pages([], error=error), "/v1/x", [], "c", earlier, account=None, endpoint="/v1/x", stream="x")
    with pytest.raises(StripeError):  # no cursor: nothing to replace
        get_page(Pages([], error=error), "/v1/x", [], None, ["b"], account=None, endpoint="/v1/x", stream="x")


def test_a_list_is_read_page_by_page_until_it_ends():
    client = Pages([f"o{i:03d}" for i in range(250, 0, -1)])
    bodies = list(list_pages(client, "/v1/x", [("p", 1)], account="acct_1", endpoint="/v1/e", stream="x"))
    assert ids_of(bodies) == client.ids and len(bodies) == 3
    assert [r[1] for r in client.requests] == [
        [("p", 1), ("limit", 100)], [("p", 1), ("limit", 100), ("starting_after", "o151")],
        [("p", 1), ("limit", 100), ("starting_after", "o051")]]
    assert {r[2:] for r in client.requests} == {("acct_1", "/v1/e", "x")}
    client = Pages([f"o{i:03d}" for i in range(250, 0, -1)])
    bodies = list(list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x", paginated=False))
    assert len(bodies) == 1 and client.requests[0][1] == []


def test_a_list_resumed_after_a_cursor_goes_on_after_it_and_stops_if_it_comes_back():
    client = Pages(["e", "d", "c", "b", "a"])
    bodies = list(list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x", starting_after="c"))
    assert ids_of(bodies) == ["b", "a"]
    assert client.requests[0][1] == [("limit", 100), ("starting_after", "c")]

    class Loop(Pages):
        def get(self, *args, **kwargs):
            super().get(*args, **kwargs)
            return {"data": [{"id": "c"}], "has_more": True}

    loop = Loop(["c"])
    with pytest.raises(StripeError) as raised:
        list(list_pages(loop, "/v1/x", [], account=None, endpoint="/v1/e", stream="x", starting_after="c"))
    assert str(raised.value) == "stream x: GET /v1/x returned cursor c twice; stopping instead of looping"
    assert raised.value.path == "/v1/x"
    assert len(loop.requests) == 1  # the cursor it was given counts as used


def test_a_list_that_is_not_paginated_is_one_page_whatever_it_says():
    class Says(Pages):
        def get(self, *args, **kwargs):
            super().get(*args, **kwargs)
            return {"data": [{"id": "a"}], "has_more": True}

    client = Says(["a"])
    assert len(list(list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x",
                               paginated=False))) == 1


def test_a_deleted_first_cursor_falls_back_on_the_ids_given_and_later_ones_on_the_previous_page():
    client = Pages(["e", "d", "c", "b", "a"], deleted={"c"})
    bodies = list(list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x", starting_after="c",
                             earlier=["d", "e"]))
    assert ids_of(bodies) == ["b", "a"]
    # a page's last object deleted before the next page is read: the one before it
    ids = [f"o{i:03d}" for i in range(250, 0, -1)]

    class DeletedAfterRead(Pages):
        def get(self, path, params, **kw):
            body = super().get(path, params, **kw)
            if len(self.requests) == 1:
                self.deleted.add(body["data"][-1]["id"])  # o151
            if len(self.requests) == 3:
                self.deleted.update({body["data"][-1]["id"], body["data"][-2]["id"]})
            return body

    client = DeletedAfterRead(ids)
    got = ids_of(list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x"))
    assert got == ids  # each read before it was deleted, and nothing after it skipped
    assert [dict(r[1]).get("starting_after") for r in client.requests] == [None, "o151", "o152", "o051", "o052",
                                                                            "o053"]
    # every object of a page deleted: the cursor that read it is the last fallback
    client = Pages(ids)
    pages = list_pages(client, "/v1/x", [], account=None, endpoint="/v1/x", stream="x")
    next(pages)
    second = next(pages)
    client.deleted.update(o["id"] for o in second["data"])
    assert ids_of([next(pages)]) == ids[200:]
    assert dict(client.requests[-1][1])["starting_after"] == "o151"
