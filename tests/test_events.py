"""Reading events in a window (`read_window`) and keeping the newest per object
(`newest_per_object`), in-process against a fake `/v1/events`, so mutation testing sees them
(docs/mutation.md). The end-to-end behaviour is in test_engine.py."""

from itertools import pairwise
from types import SimpleNamespace

import pytest

from tap_stripe.engine.events import EVENTS_PATH, newest_per_object, read_window
from tap_stripe.engine.windows import split_window


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
    from tap_stripe.engine.events import _listed  # the rule itself, pinned
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


# --------------------------------------------------------------------------- applying events
# In-process, with fakes for Stripe (`GET` of one object), the shapers and the child lists.
class Shaper:
    def __init__(self, name):
        self.name = name

    def shape(self, obj, account, changed_at):
        return {"shaped": obj["id"], "account": account, "at": changed_at}

    def deletion(self, obj_id, object_type, deleted_at, account):
        return {"deleted": obj_id, "object": object_type, "account": account, "at": deleted_at}


class Objects:
    """`GET <retrieve_path>`: the objects by id (404 for others, or `error` for every one)."""

    def __init__(self, objects=(), error=None):
        self.objects = {o["id"]: o for o in objects}
        self.error = error
        self.gets = []

    def get(self, path, params, *, account, endpoint, stream):
        from tap_stripe.api.client import StripeError

        self.gets.append((path, list(params), account, endpoint, stream))
        if self.error is not None:
            raise self.error
        object_id = path.rsplit("/", 1)[1]
        if object_id not in self.objects:
            raise StripeError("no such object", status=404)
        return self.objects[object_id]


class ChildLists:
    """`Children.records`: each member's records of a parent, from `lists` (member -> parent -> ids)."""

    def __init__(self, lists=None):
        self.lists = lists or {}
        self.calls = []
        self.feeds = []  # the feed each read was for (its account's child list)

    def records(self, feed, member, obj, changed_at):
        self.calls.append((member.spec.name, obj["id"], changed_at))
        self.feeds.append(feed)
        if not member.selected:
            return []
        return [(member.spec.name, {"id": i}) for i in self.lists.get(member.spec.name, {}).get(obj["id"], [])]


def family(name, selected, **kw):
    from tap_stripe.engine.feeds import Feed
    from tap_stripe.engine.plan import Planner, Scope
    from tap_stripe.streams import SPECS

    scope = Scope(specs=SPECS, selected=set(selected), accounts=[None], platform_streams=(set(), True), hi=10_000,
                  now=10_000, shapers={})
    feed = Feed(Planner(scope, None, None, None).family(SPECS[name]), kw.pop("account", "acct_1"), 10_000)
    feed.record_account = kw.pop("record_account", feed.account)
    for k, v in kw.items():
        setattr(feed, k, v)
    return feed


def context(objects=(), lists=None, error=None, updates_mode="refetch", expand=None, start=None):
    from tap_stripe.engine.events import EventContext
    from tap_stripe.streams import SPECS

    return EventContext(client=Objects(objects, error), shapers={n: Shaper(n) for n in SPECS},
                        children=ChildLists(lists), summary=Summary(), expand=expand or {},
                        updates_mode=updates_mode, start=start)


def ev_(type_, obj, created=500, **extra):
    return {"id": f"evt_{type_}_{obj['id']}", "type": type_, "created": created, "data": {"object": obj}, **extra}


def test_a_parent_s_update_and_its_child_s_deletion_in_one_window_are_both_applied():
    """A child's deletion is keyed by the child, not by the parent it would re-read: else the
    parent's newer update (or the deletion) would be dropped as an older event of one object."""
    from tap_stripe.engine.events import apply_event, event_key

    feed = family("customers", {"customers", "customer_tax_ids"})
    customer = {"id": "cus_1", "object": "customer", "created": 100}
    deleted = ev_("customer.tax_id.deleted", {"id": "txi_1", "object": "tax_id", "customer": "cus_1"}, 400)
    for events in ([ev_("customer.updated", customer, 300), deleted],
                   [deleted, ev_("customer.updated", customer, 450)]):
        newest = newest_per_object(events, key=lambda e: event_key(feed, e))
        assert [e["id"] for e in newest] == [e["id"] for e in events]
        ctx = context([customer], {"customer_tax_ids": {"cus_1": ["txi_2"]}})
        records = [r for e in newest for r in apply_event(ctx, feed, e)]
        assert ("customers", {"shaped": "cus_1", "account": "acct_1", "at": events[0]["created"] if
                              events[0]["type"] == "customer.updated" else 450}) in records
        assert ("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_1", "at": 400}) \
            in records


def test_a_parent_s_deletion_is_kept_over_a_later_child_event_of_one_window():
    """A customer deleted and, later in the same window (the same second), a tax id event that
    names it: the child's event is keyed by its parent, and re-reading a parent that is gone
    emits nothing, so it must not replace the deletion (the customer would stay in the target)."""
    from tap_stripe.engine.events import apply_event, ends_object, event_key

    feed = family("customers", {"customers", "customer_tax_ids"})
    customer = {"id": "cus_1", "object": "customer", "created": 100}
    deletion = ev_("customer.deleted", customer, 300)
    child = ev_("customer.tax_id.created", {"id": "txi_2", "object": "tax_id", "customer": "cus_1"}, 300)
    other = ev_("customer.updated", {"id": "cus_2", "object": "customer", "created": 100}, 300)
    events = [deletion, other, child, ev_("customer.updated", customer, 300)]
    newest = newest_per_object(events, key=lambda e: event_key(feed, e), final=lambda e: ends_object(feed, e))
    assert newest == [deletion, other]
    records = [r for e in newest for r in apply_event(context([{**other["data"]["object"]}]), feed, e)]
    assert ("customers", {"deleted": "cus_1", "object": "customer", "account": "acct_1", "at": 300}) in records
    assert newest_per_object(events, key=lambda e: event_key(feed, e)) == [other, events[-1]]  # without `final`
    assert not ends_object(feed, child) and not ends_object(feed, other) and ends_object(feed, deletion)


def test_event_keys_the_object_the_parent_a_child_re_reads_or_the_deleted_child():
    from tap_stripe.engine.events import event_key

    feed = family("customers", {"customers", "customer_tax_ids"})
    assert event_key(feed, ev_("customer.updated", {"id": "cus_1", "object": "customer"})) == "cus_1"
    tax_id = {"id": "txi_1", "object": "tax_id", "customer": "cus_9"}
    assert event_key(feed, ev_("customer.tax_id.updated", tax_id)) == "cus_9"
    assert event_key(feed, ev_("customer.tax_id.updated", {**tax_id, "customer": {"id": "cus_8"}})) == "cus_8"
    assert event_key(feed, ev_("customer.tax_id.deleted", tax_id)) == "deleted txi_1"
    assert event_key(feed, ev_("customer.tax_id.updated", {**tax_id, "customer": ""})) is None


def test_an_update_is_re_read_by_id_with_this_run_s_expansions_and_its_children_read_again():
    from tap_stripe.engine.events import apply_event

    feed = family("customers", {"customers", "customer_tax_ids"})
    now = {"id": "cus_1", "object": "customer", "created": 100, "name": "now"}
    ctx = context([now], {"customer_tax_ids": {"cus_1": ["txi_1"]}}, expand={"customers": ["test_clock"]})
    out = apply_event(ctx, feed, ev_("customer.updated", {"id": "cus_1", "object": "customer", "name": "then"}))
    assert out == [("customers", {"shaped": "cus_1", "account": "acct_1", "at": 500}),
                   ("customer_tax_ids", {"id": "txi_1"})]
    (path, params, account, endpoint, stream), = ctx.client.gets
    assert (path, params[-1], account, endpoint, stream) == \
        ("/v1/customers/cus_1", ("expand[]", "test_clock"), "acct_1", "/v1/customers/{id}", "customers")
    assert ctx.children.calls[-1] == ("customer_tax_ids", "cus_1", 500)
    # a parent not selected: only its children's records
    feed = family("customers", {"customer_tax_ids"})
    assert apply_event(ctx, feed, ev_("customer.updated", {"id": "cus_1", "object": "customer"})) == \
        [("customer_tax_ids", {"id": "txi_1"})]


def test_snapshots_are_used_without_expansions_and_a_vanished_object_keeps_its_snapshot():
    from tap_stripe.engine.events import apply_event

    feed = family("charges", {"charges"})
    snapshot = {"id": "ch_1", "object": "charge", "created": 100}
    ctx = context(updates_mode="snapshot")
    assert apply_event(ctx, feed, ev_("charge.updated", snapshot)) == \
        [("charges", {"shaped": "ch_1", "account": "acct_1", "at": 500})]
    assert ctx.client.gets == []
    ctx = context(updates_mode="snapshot", expand={"charges": ["customer"]})  # expanded: fetched again
    assert apply_event(ctx, feed, ev_("charge.updated", snapshot)) == \
        [("charges", {"shaped": "ch_1", "account": "acct_1", "at": 500})]
    assert len(ctx.client.gets) == 1
    from tap_stripe.api.client import StripeError

    with pytest.raises(StripeError, match="boom"):
        apply_event(context(error=StripeError("boom", status=500)), feed, ev_("charge.updated", snapshot))


def test_a_deletion_deletes_the_object_and_the_children_it_still_embeds():
    from tap_stripe.engine.events import apply_event

    feed = family("customers", {"customers", "customer_tax_ids"}, record_account="acct_r")
    snapshot = {"id": "cus_1", "object": "customer", "created": 100,
                "tax_ids": {"data": [{"id": "txi_1", "object": "tax_id"}, {"id": "txi_2"}, {"x": 1}, "txi_3"]}}
    ctx = context()
    assert apply_event(ctx, feed, ev_("customer.deleted", snapshot)) == [
        ("customers", {"deleted": "cus_1", "object": "customer", "account": "acct_r", "at": 500}),
        ("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_r", "at": 500}),
        ("customer_tax_ids", {"deleted": "txi_2", "object": "", "account": "acct_r", "at": 500})]
    assert ctx.client.gets == []
    # A re-read that answers deleted: the same; an unselected parent or a skipped child: none of theirs.
    feed = family("customers", {"customer_tax_ids", "customer_sources"})
    for member in feed.root.children:
        if member.spec.name == "customer_sources":
            member.skipped = "permission denied"
    ctx = context([{"id": "cus_1", "deleted": True}])
    assert apply_event(ctx, feed, ev_("customer.updated", {**snapshot, "sources": {"data": [{"id": "src_1"}]}})) \
        == [("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_1", "at": 500}),
            ("customer_tax_ids", {"deleted": "txi_2", "object": "", "account": "acct_1", "at": 500})]


def test_events_of_objects_before_start_date_or_listed_by_this_run_are_left_out():
    from tap_stripe.engine.events import apply_event

    feed = family("customers", {"customers"}, listed_from=1_000)
    ctx = context([{"id": "cus_1", "object": "customer", "created": 1_500}], start=200)
    old = {"id": "cus_1", "object": "customer", "created": 199}
    assert apply_event(ctx, feed, ev_("customer.updated", old)) == []
    assert apply_event(ctx, feed, ev_("customer.updated", {**old, "created": 1_500})) == []  # listed
    assert apply_event(ctx, feed, ev_("customer.updated", {**old, "created": 200})) != []
    assert apply_event(ctx, feed, ev_("customer.deleted", {**old, "created": 1_500})) != []
    assert [get[0] for get in ctx.client.gets] == ["/v1/customers/cus_1"]


def test_a_resync_s_update_events_only_delete_the_children_the_update_removed():
    from tap_stripe.engine.events import apply_event

    feed = family("subscriptions", {"subscriptions", "subscription_items"}, deletions_only=True)
    before = {"items": {"data": [{"id": "si_1", "object": "subscription_item"}, {"id": "si_2"}], "has_more": False}}
    after = {"id": "sub_1", "object": "subscription", "created": 100,
             "items": {"data": [{"id": "si_2"}], "has_more": False}}
    event = ev_("customer.subscription.updated", after, _changes=[(before, after)])
    ctx = context()
    assert apply_event(ctx, feed, event) == [
        ("subscription_items", {"deleted": "si_1", "object": "subscription_item", "account": "acct_1", "at": 500})]
    assert ctx.client.gets == [] and ctx.children.calls == []
    # A list that goes on past its first page: the whole list is read once, and only an item on
    # no page is removed (one that moved past the first page is kept).
    more = {**after, "items": {"data": [{"id": "si_2"}], "has_more": True}}
    longer = context(lists={"subscription_items": {"sub_1": ["si_2", "si_9", "si_1"]}})
    assert apply_event(longer, feed, ev_("customer.subscription.updated", more, _changes=[(before, more)])) == []
    assert longer.children.calls == [("subscription_items", "sub_1", 500)] and longer.children.feeds == [feed]
    shorter = context(lists={"subscription_items": {"sub_1": ["si_2", "si_9"]}})
    assert apply_event(shorter, feed, ev_("customer.subscription.updated", more, _changes=[(before, more)])) == [
        ("subscription_items", {"deleted": "si_1", "object": "subscription_item", "account": "acct_1", "at": 500})]
    unchanged = {"items": {"data": [{"id": "si_2"}], "has_more": True}}
    assert apply_event(shorter, feed, ev_("customer.subscription.updated", more, _changes=[(unchanged, more)])) == []
    assert len(shorter.children.calls) == 1  # nothing missing from the first page: no read
    # A previous value that is not a list, a member unselected or skipped: nothing is removed.
    assert apply_event(ctx, feed, ev_("customer.subscription.updated", after,
                                      _changes=[({"items": None}, after)])) == []
    assert apply_event(ctx, feed, ev_("customer.subscription.updated", after,
                                      _changes=[(before, {**after, "items": None})])) == []
    assert apply_event(ctx, family("subscriptions", {"subscriptions"}, deletions_only=True), event) == []
    skipped = family("subscriptions", {"subscriptions", "subscription_items"}, deletions_only=True)
    skipped.root.children[0].skipped = "permission denied"
    assert apply_event(ctx, skipped, event) == []
    # Several changes: each one's removals.
    before2 = {"items": {"data": [{"id": "si_3"}], "has_more": False}}
    two = ev_("customer.subscription.updated", after, _changes=[(before, after), (before2, after)])
    assert [r["deleted"] for _, r in apply_event(ctx, feed, two)] == ["si_1", "si_3"]


def test_an_update_that_removed_children_deletes_the_ones_gone_now():
    from tap_stripe.engine.events import apply_event

    feed = family("subscriptions", {"subscriptions", "subscription_items"})
    now = {"id": "sub_1", "object": "subscription", "created": 100}
    ctx = context([now], {"subscription_items": {"sub_1": ["si_2"]}})
    before = [{"items": {"data": [{"id": "si_1", "object": "subscription_item"}, {"id": "si_2"}]}},
              {"items": {"data": [{"id": "si_3"}]}}, {"status": "x"}]
    event = ev_("customer.subscription.updated", now, _changes=[(b, now) for b in before])
    assert apply_event(ctx, feed, event) == [
        ("subscriptions", {"shaped": "sub_1", "account": "acct_1", "at": 500}),
        ("subscription_items", {"id": "si_2"}),
        ("subscription_items", {"deleted": "si_1", "object": "subscription_item", "account": "acct_1", "at": 500}),
        ("subscription_items", {"deleted": "si_3", "object": "", "account": "acct_1", "at": 500})]
    feed = family("subscriptions", {"subscriptions"})  # the child unselected: no deletion of it
    assert apply_event(ctx, feed, event) == [("subscriptions", {"shaped": "sub_1", "account": "acct_1", "at": 500})]


def test_a_child_s_own_event_re_reads_its_parent_or_deletes_the_child():
    from tap_stripe.engine.events import apply_event

    parent = {"id": "cus_1", "object": "customer", "created": 300}
    tax_id = {"id": "txi_1", "object": "tax_id", "customer": "cus_1"}
    feed = family("customers", {"customers", "customer_tax_ids"})
    ctx = context([parent], {"customer_tax_ids": {"cus_1": ["txi_1"]}}, start=300)
    assert apply_event(ctx, feed, ev_("customer.tax_id.updated", tax_id)) == [
        ("customers", {"shaped": "cus_1", "account": "acct_1", "at": 500}), ("customer_tax_ids", {"id": "txi_1"})]
    assert ctx.client.gets[-1][0] == "/v1/customers/cus_1"
    assert apply_event(ctx, feed, ev_("customer.tax_id.deleted", tax_id)) == [
        ("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_1", "at": 500})]
    assert apply_event(ctx, feed, ev_("customer.tax_id.deleted", {"id": "txi_1"})) == []  # no object type
    only_parent = family("customers", {"customers"})
    assert apply_event(ctx, only_parent, ev_("customer.tax_id.deleted", tax_id)) == []
    skipped = family("customers", {"customers", "customer_tax_ids"})
    next(m for m in skipped.root.children if m.spec.name == "customer_tax_ids").skipped = "denied"
    assert apply_event(ctx, skipped, ev_("customer.tax_id.updated", tax_id)) == []
    gets = len(ctx.client.gets)
    assert apply_event(ctx, feed, ev_("customer.tax_id.updated", {**tax_id, "customer": None})) == []
    assert apply_event(context([parent]), family("customers", {"customers", "customer_tax_ids"},
                                                 deletions_only=True),
                       ev_("customer.tax_id.updated", tax_id)) == []
    assert len(ctx.client.gets) == gets
    # The parent gone (404, or deleted), or created before start_date: nothing.
    assert apply_event(context(), feed, ev_("customer.tax_id.updated", tax_id)) == []
    assert apply_event(context([{**parent, "deleted": True}]), feed, ev_("customer.tax_id.updated", tax_id)) == []
    assert apply_event(context([parent], start=301), feed, ev_("customer.tax_id.updated", tax_id)) == []
    # The deletion record carries the feed's record account and the event's time.
    feed = family("customers", {"customers", "customer_tax_ids"}, record_account="acct_r")
    assert apply_event(context(), feed, ev_("customer.tax_id.deleted", {"id": "txi_1", "object": "tax_id"}, 77)) == \
        [("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_r", "at": 77})]


def test_a_changed_object_s_children_are_read_again_except_skipped_ones():
    from tap_stripe.engine.events import apply_event

    feed = family("customers", {"customers", "customer_sources", "customer_tax_ids"})
    order = [m.spec.name for m in feed.root.children]
    assert order.index("customer_sources") < order.index("customer_tax_ids")
    next(m for m in feed.root.children if m.spec.name == "customer_sources").skipped = "denied"
    now = {"id": "cus_1", "object": "customer", "created": 100}
    ctx = context([now], {"customer_tax_ids": {"cus_1": ["txi_1"]}, "customer_sources": {"cus_1": ["src_1"]}})
    seen = []
    records = ctx.children.records
    ctx.children.records = lambda f, m, o, at: seen.append(f) or records(f, m, o, at)
    assert apply_event(ctx, feed, ev_("customer.updated", now))[1:] == [("customer_tax_ids", {"id": "txi_1"})]
    assert seen == [feed]


def test_a_resync_s_update_deletes_removed_children_of_every_embedding_member():
    from tap_stripe.engine.events import apply_event

    feed = family("customers", {"customers", "customer_balance_transactions", "customer_tax_ids"},
                  deletions_only=True)
    names = [m.spec.name for m in feed.root.children]
    assert names.index("customer_balance_transactions") < names.index("customer_tax_ids")
    before = {"tax_ids": {"data": [{"id": "txi_1", "object": "tax_id"}], "has_more": False}}
    after = {"id": "cus_1", "object": "customer", "created": 100, "tax_ids": {"data": [], "has_more": False}}
    out = apply_event(context(), feed, ev_("customer.updated", after, _changes=[(before, after)]))
    assert out == [("customer_tax_ids", {"deleted": "txi_1", "object": "tax_id", "account": "acct_1", "at": 500})]
