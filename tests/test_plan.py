"""The planner, in-process (`Planner`, `_common_done`, `_type_groups`): which feeds a run
reads, full tables and their events, the spans a killed run completed, the periodic
reconciliation, each member's events bookmark. The bookmarks of lists are pinned in
test_engine_bookmarks.py; these pin what mutation testing found free there."""

from __future__ import annotations

import dataclasses
import time

from test_engine_bookmarks import DAY, HI, NOW, VERSION, bookmark, cursors, make_run, planned, segs

from tap_stripe.engine.feeds import Feed
from tap_stripe.engine.plan import (
    EVENTS_RETENTION,
    EVENTS_SAFETY_MARGIN,
    UNSETTLED_DAYS,
    Planner,
    _common_done,
    _type_groups,
)
from tap_stripe.engine.windows import FIRST_FANOUT
from tap_stripe.tap import SPECS

LINKS = dataclasses.replace(SPECS["payment_links"], deleted_event="payment_link.deleted")
LINK_ITEMS = dataclasses.replace(SPECS["payment_link_line_items"], deleted_event="payment_link.line_item.deleted")
TABLES = {**SPECS, "payment_links": LINKS, "payment_link_line_items": LINK_ITEMS}


def state_of(**streams):
    """{stream: {account: cursors}} as a state."""
    return {"bookmarks": {s: {"accounts": accounts} for s, accounts in streams.items()}}


def table_run(state=None, selected=("payment_links", "payment_link_line_items"), **settings):
    return make_run(state, selected=selected, specs=TABLES, **settings)


# --------------------------------------------------------------------------- the feeds of a run
def test_a_run_plans_a_feed_per_top_level_stream_and_account_and_platform_streams_once():
    run = make_run(selected=("charges", "balance", "customer_tax_ids", "country_specs"))
    scope = run.planner.scope
    run.planner.scope = dataclasses.replace(scope, accounts=["acct_1", "acct_2"],
                                            platform_streams=({"country_specs"}, True), own_account="acct_own")
    feeds = run.planner.plan()
    got = [(f.name, f.account, f.record_account, f.hi) for f in feeds]
    order = [n for n in SPECS if n in ("balance", "charges", "customers", "country_specs")]
    assert got == [row for name in order for row in (
        [(name, None, "acct_own", HI)] if name == "country_specs" else
        [(name, account, account, HI) for account in ("acct_1", "acct_2")])]
    assert all(f.segments for f in feeds)  # each planned
    customers = next(f for f in feeds if f.name == "customers")
    assert not customers.root.selected and [m.spec.name for m in customers.root.children] == ["customer_tax_ids"]
    assert cursors(run, "customer_tax_ids", "acct_2") == {"events": HI}
    # the platform not read: its streams have no feed
    run.planner.scope = dataclasses.replace(run.planner.scope, platform_streams=({"country_specs"}, False))
    assert "country_specs" not in {f.name for f in run.planner.plan()}
    # a stream not selected, nor any child of it: no feed; the key's own account keeps None
    run = make_run(selected=("charges",))
    feeds = run.planner.plan()
    assert [(f.name, f.account, f.record_account) for f in feeds] == [("charges", None, None)]


def test_the_order_of_the_feeds_follows_the_specs():
    run = make_run(selected=("charges", "balance"))
    run.planner.scope = dataclasses.replace(run.planner.scope, accounts=["acct_1", "acct_2"])
    names = [(f.name, f.account) for f in run.planner.plan()]
    order = [n for n in SPECS if n in ("charges", "balance")]
    assert names == [(n, a) for n in order for a in ("acct_1", "acct_2")]


def test_a_new_table_version_is_the_time_in_milliseconds():
    planner = Planner(make_run().planner.scope, None, None, None)
    before = int(time.time() * 1000)
    version = planner.new_version()
    assert before <= version <= int(time.time() * 1000)
    assert Planner(make_run().planner.scope, None, None, None, new_version=lambda: 5).new_version() == 5


# --------------------------------------------------------------------------- full tables
def test_a_full_table_s_first_read_saves_where_each_member_s_events_start():
    run = table_run(start=NOW - 50 * DAY)
    run.planner.scope = dataclasses.replace(run.planner.scope, bounded=True)
    feed = planned(run, "payment_links")
    assert segs(feed) == [("pages", None, None)]
    assert (feed.version, feed.activate, feed.full_read, feed.bounded) == (VERSION, True, True, False)
    assert feed.bounded is False
    assert {m.floor for m in feed.root.walk()} == {NOW - 50 * DAY}
    assert cursors(run, "payment_links") == {"events": HI}
    assert cursors(run, "payment_link_line_items") == {"events": HI}
    # A table without events: pages only, and no events bookmark.
    run = make_run(selected=("country_specs",))
    feed = planned(run, "country_specs")
    assert segs(feed) == [("pages", None, None)] and run.state.data["bookmarks"] == {}


def test_a_full_table_read_a_killed_run_left_goes_on_from_its_next_page_in_its_version():
    progress = {"version": 7, "cursor": "plink_9", "earlier": ["plink_10", "plink_11"],
                "streams": ["payment_link_line_items", "payment_links"]}
    # Between reconciliations (events would be read), a read in progress is finished first.
    accounts = {"acct_1": {"events": NOW - DAY, "reconciled": NOW - DAY, "version": 5, "table": progress}}
    run = table_run(state_of(payment_links=accounts, payment_link_line_items={"acct_1": {"events": NOW - DAY}}))
    feed = planned(run, "payment_links", "acct_1")
    first = feed.segments[0]
    assert (first.kind, first.cursor, first.earlier) == ("pages", "plink_9", ["plink_10", "plink_11"])
    assert feed.version == 7 and feed.full_read and feed.activate
    # Without `earlier` (an older state): no cursors to fall back on.
    accounts["acct_1"]["table"] = {k: v for k, v in progress.items() if k != "earlier"}
    run = table_run(state_of(payment_links=accounts, payment_link_line_items={"acct_1": {"events": NOW - DAY}}))
    assert planned(run, "payment_links", "acct_1").segments[0].earlier == []


def test_a_full_table_read_left_under_another_selection_begins_again():
    progress = {"version": 7, "cursor": "plink_9", "earlier": [], "streams": ["payment_links"]}
    run = table_run(state_of(payment_links={"acct_1": {"table": progress}}))  # the line items are selected now
    feed = planned(run, "payment_links", "acct_1")
    assert (feed.segments[0].kind, feed.segments[0].cursor) == ("pages", None)
    assert feed.version == VERSION and feed.full_read


def test_between_reconciliations_a_full_table_reads_only_its_events():
    events, lookback = NOW - 2 * DAY, 60
    accounts = {"default": {"events": NOW - 9 * DAY, "reconciled": NOW - 20 * DAY, "version": 9},
                "acct_1": {"events": events, "reconciled": NOW - DAY, "version": 7}}
    run = table_run(state_of(payment_links=accounts,
                             payment_link_line_items={"acct_1": {"events": events + 10}}), lookback=lookback)
    feed = planned(run, "payment_links", "acct_1")
    assert segs(feed) == [("events", events - lookback, HI)]
    assert feed.version == 7 and not feed.full_read and not feed.activate and not feed.deletions_only
    assert feed.events_types == LINKS.event_types
    assert feed.segments[0].types == LINKS.event_types
    assert cursors(run, "payment_links", "acct_1") == accounts["acct_1"]


def test_a_reconciliation_is_due_at_full_resync_every_days_exactly():
    every = 7 * DAY
    for reconciled, due in ((NOW - every, True), (NOW - every + 1, False), (None, True)):
        cursors_ = {"events": NOW - DAY, "version": 7, **({"reconciled": reconciled} if reconciled else {})}
        run = table_run(state_of(payment_links={"acct_1": cursors_, "default": {"reconciled": NOW}}),
                        selected=("payment_links",))
        feed = planned(run, "payment_links", "acct_1")
        assert feed.full_read is due, reconciled
        assert run.planner.due(feed) is due


def test_a_full_table_re_read_reads_deletions_since_its_members_events():
    lookback = 60
    state = state_of(payment_links={"acct_1": {"events": NOW - 3 * DAY, "version": 7}},
                     payment_link_line_items={"acct_1": {"events": NOW - 2 * DAY}})
    run = table_run(state, lookback=lookback)
    feed = planned(run, "payment_links", "acct_1")  # never reconciled: due
    assert segs(feed) == [("pages", None, None), ("events", NOW - 3 * DAY - lookback, HI)]
    assert feed.version == VERSION and feed.full_read and feed.activate and feed.deletions_only
    assert feed.events_types == ("payment_link.deleted", "payment_link.line_item.deleted")
    assert cursors(run, "payment_links", "acct_1")["events"] == NOW - 3 * DAY  # moved at its end only
    # deletions no older than Stripe keeps
    state = state_of(payment_links={"default": {"events": NOW - 50 * DAY}})
    run = table_run(state, selected=("payment_links",))
    feed = planned(run, "payment_links")
    assert segs(feed) == [("pages", None, None), ("events", NOW - EVENTS_RETENTION, HI)]  # expired: a re-read
    run = table_run(state_of(payment_links={"default": {"events": NOW - 40 * DAY}}, ),
                    selected=("payment_links",), full_resync_every=100 * DAY)
    feed = planned(run, "payment_links")
    assert segs(feed)[-1] == ("events", NOW - EVENTS_RETENTION, HI)
    # a stream with no deletion events: the pages alone
    run = make_run(state_of(payment_links={"default": {"events": NOW - DAY}}), selected=("payment_links",))
    assert segs(planned(run, "payment_links")) == [("pages", None, None)]


def test_a_member_new_to_the_selection_makes_the_table_read_whole_and_gets_its_events_bookmark():
    state = state_of(payment_links={"default": {"events": NOW - DAY, "reconciled": NOW, "version": 7}})
    run = table_run(state)
    feed = planned(run, "payment_links")
    assert segs(feed) == [("pages", None, None), ("events", NOW - DAY, HI)]
    assert feed.full_read and feed.deletions_only
    assert cursors(run, "payment_links")["events"] == NOW - DAY  # left as it was
    assert cursors(run, "payment_link_line_items") == {"events": HI}
    # an events bookmark older than Stripe keeps: read whole too
    state = state_of(payment_links={"default": {"events": NOW - EVENTS_RETENTION, "reconciled": NOW}})
    feed = planned(table_run(state, selected=("payment_links",)), "payment_links")
    assert feed.full_read
    state = state_of(payment_links={"default": {"events": NOW - EVENTS_RETENTION + EVENTS_SAFETY_MARGIN,
                                                "reconciled": NOW}})
    feed = planned(table_run(state, selected=("payment_links",)), "payment_links")
    assert not feed.full_read


# --------------------------------------------------------------------------- done spans
def test_spans_a_killed_run_completed_are_not_read_again():
    lookback = 60
    state = bookmark(created=NOW - 10 * DAY, events=NOW - 10 * DAY, version=7,
                     done=[[NOW - 12 * DAY, NOW - 11 * DAY], [NOW - 8 * DAY, NOW - 6 * DAY],
                           [NOW - 5 * DAY, NOW - 5 * DAY + lookback], [NOW - 4 * DAY, NOW - 3 * DAY]])
    run = make_run(state, lookback=lookback)
    feed = planned(run)
    lo = NOW - 10 * DAY - lookback
    assert segs(feed) == [("window", lo, NOW - 8 * DAY), ("window", NOW - 6 * DAY - lookback, NOW - 4 * DAY),
                          ("window", NOW - 3 * DAY - lookback, HI), ("events", NOW - 10 * DAY - lookback, HI)]
    assert all(s.fanout is None for s in feed.segments)
    assert feed.listed_from == NOW - 3 * DAY - lookback


def test_a_first_load_killed_after_a_later_span_reads_what_is_left_open_first():
    run = make_run(bookmark(events=HI, version=7, done=[[NOW - 8 * DAY, HI + 10]]))
    feed = planned(run)
    assert segs(feed) == [("window", 0, NOW - 8 * DAY)]
    assert feed.segments[0].fanout == FIRST_FANOUT and feed.listed_from == HI
    run = make_run(bookmark(events=HI, version=7, done=[[NOW - 8 * DAY, NOW - 6 * DAY]]), start=NOW - 20 * DAY)
    feed = planned(run)
    assert segs(feed) == [("window", NOW - 20 * DAY, NOW - 8 * DAY), ("window", NOW - 6 * DAY, HI)]
    assert [s.fanout for s in feed.segments] == [FIRST_FANOUT, None]
    # a span beginning where the windows begin: nothing before it
    run = make_run(bookmark(events=HI, version=7, done=[[NOW - 20 * DAY, NOW - 6 * DAY]]), start=NOW - 20 * DAY)
    assert segs(planned(run)) == [("window", NOW - 6 * DAY, HI)]
    # a span that is empty once less the lookback
    run = make_run(bookmark(events=HI, version=7, done=[[NOW - 8 * DAY, NOW - 8 * DAY + 60]]), lookback=60)
    assert [s for s in segs(planned(run)) if s[0] == "window"] == [("window", 0, HI)]
    # an incremental window that begins after start_date is not open
    run = make_run(bookmark(created=NOW - 10 * DAY, events=HI, version=7, done=[[NOW - 8 * DAY, NOW - 6 * DAY]]),
                   start=NOW - 20 * DAY)
    assert [s.fanout for s in planned(run).segments if s.kind == "window"] == [None, None]
    run = make_run(bookmark(created=NOW - 20 * DAY, events=HI, version=7, done=[[NOW - 8 * DAY, NOW - 6 * DAY]]),
                   start=NOW - 20 * DAY)
    assert [s.fanout for s in planned(run).segments if s.kind == "window"] == [FIRST_FANOUT, None]


def test_a_resync_skips_the_spans_it_completed_and_only_those_of_its_account():
    resync = {"version": 5, "created": NOW - 10 * DAY, "started": NOW - 11 * DAY,
              "done": [[NOW - 8 * DAY, NOW - 6 * DAY]]}
    state = state_of(charges={"acct_1": {"resync": resync, "events": NOW - 11 * DAY},
                              "default": {"resync": {**resync, "done": [[NOW - 9 * DAY, NOW - 2 * DAY]]},
                                          "events": NOW - 11 * DAY}})
    feed = planned(make_run(state), "charges", "acct_1")
    assert segs(feed)[:2] == [("window", NOW - 10 * DAY, NOW - 8 * DAY), ("window", NOW - 6 * DAY, HI)]


def test_only_the_spans_every_selected_member_completed_count():
    assert _common_done([]) == []
    assert _common_done([[[1, 5], [8, 9]]]) == [[1, 5], [8, 9]]
    assert _common_done([[[1, 5], [8, 9]], [[0, 3], [4, 8]]]) == [[1, 3], [4, 5]]
    assert _common_done([[[1, 5], [8, 9]], [[0, 3], [4, 9]], [[2, 9]]]) == [[2, 3], [4, 5], [8, 9]]
    assert _common_done([[[1, 5]], [[5, 9]]]) == []  # touching is not sharing
    assert _common_done([[[6, 9], [1, 5]], [[0, 10]]]) == [[1, 5], [6, 9]]
    spans = [[[1, 5]]]
    _common_done(spans)[0][0] = 99
    assert spans == [[[1, 5]]]
    state = {"bookmarks": {"customers": {"accounts": {"default": {
        "created": NOW - 10 * DAY, "events": HI, "done": [[NOW - 8 * DAY, NOW - 4 * DAY]]}}},
        "customer_tax_ids": {"accounts": {"default": {"created": NOW - 10 * DAY, "events": HI,
                                                      "done": [[NOW - 7 * DAY, NOW - 3 * DAY]]}}}}}
    feed = planned(make_run(state, selected=("customers", "customer_tax_ids")), "customers")
    assert segs(feed)[:2] == [("window", NOW - 10 * DAY, NOW - 7 * DAY), ("window", NOW - 4 * DAY, HI)]


def test_event_types_are_grouped_twenty_at_a_time_without_repeats():
    assert _type_groups(()) == []
    assert _type_groups(("a", "b", "a")) == [("a", "b")]
    types = tuple(f"t{i}" for i in range(41))
    assert _type_groups(types) == [types[:20], types[20:40], types[40:]]
    assert _type_groups(types, size=40) == [types[:40], types[40:]]


# --------------------------------------------------------------------------- events bookmarks
def test_a_member_without_its_own_events_bookmark_takes_the_family_s_if_it_was_read_before():
    family = {"customers": {"acct_1": {"created": NOW - 5 * DAY, "events": NOW - 4 * DAY},
                            "default": {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY}},
              "customer_tax_ids": {"acct_1": {"created": NOW - 6 * DAY},
                                   "default": {"created": NOW - 9 * DAY, "events": NOW - 9 * DAY}}}
    run = make_run(state_of(**family), selected=("customers", "customer_tax_ids"))
    feed = planned(run, "customers", "acct_1")
    assert cursors(run, "customer_tax_ids", "acct_1")["events"] == NOW - 4 * DAY
    assert segs(feed)[-1] == ("events", NOW - 4 * DAY, HI)
    # one never read (no created bookmark): a first load, from this run's bound
    family["customer_tax_ids"]["acct_1"] = {}
    run = make_run(state_of(**family), selected=("customers", "customer_tax_ids"))
    planned(run, "customers", "acct_1")
    assert cursors(run, "customer_tax_ids", "acct_1") == {"events": HI}
    # a state from before events were kept: the oldest created bookmark of the family
    family = {"customers": {"acct_1": {"created": NOW - 5 * DAY}, "default": {"events": NOW - DAY}},
              "customer_tax_ids": {"acct_1": {"created": NOW - 6 * DAY}}}
    run = make_run(state_of(**family), selected=("customers", "customer_tax_ids"))
    planned(run, "customers", "acct_1")
    assert cursors(run, "customers", "acct_1")["events"] == NOW - 6 * DAY
    assert cursors(run, "customer_tax_ids", "acct_1")["events"] == NOW - 6 * DAY


def test_a_child_selected_without_its_parent_keeps_its_own_events_bookmark():
    run = make_run(selected=("customer_tax_ids",))
    feed = planned(run, "customers")
    assert cursors(run, "customer_tax_ids") == {"events": HI}
    assert cursors(run, "customers") == {"version": VERSION}
    assert segs(feed) == [("window", 0, HI)]


def test_a_stream_without_retrieve_path_reads_none_of_its_children_s_events():
    customers = dataclasses.replace(SPECS["customers"], retrieve_path=None)
    run = make_run(bookmark(), selected=("customers", "customer_tax_ids"), specs={**SPECS, "customers": customers})
    feed = Feed(run.planner.family(customers), None, HI)
    assert run.planner.event_types(feed) == customers.event_types
    feed = planned(make_run(selected=("customers", "customer_tax_ids")), "customers")
    assert "customer.tax_id.updated" in make_run().planner.event_types(feed)


# --------------------------------------------------------------------------- floors
def test_objects_that_settle_without_an_event_are_re_read_from_the_oldest_pending_one():
    name = "balance_transactions"
    accounts = {"acct_1": {"created": NOW - 2 * DAY, "pending": NOW - 5 * DAY},
                "default": {"created": NOW - 2 * DAY, "pending": NOW - 30 * DAY}}
    run = make_run(state_of(balance_transactions=accounts), selected=(name,), lookback=60)
    assert segs(planned(run, name, "acct_1")) == [("window", NOW - 5 * DAY, HI)]
    accounts["acct_1"]["pending"] = NOW - DAY  # newer than the bookmark less the lookback
    run = make_run(state_of(balance_transactions=accounts), selected=(name,), lookback=60)
    assert segs(planned(run, name, "acct_1")) == [("window", NOW - 2 * DAY - 60, HI)]
    del accounts["acct_1"]["pending"]  # none recorded yet: the 14 days earlier versions re-read
    run = make_run(state_of(balance_transactions=accounts), selected=(name,), lookback=60)
    assert segs(planned(run, name, "acct_1")) == [("window", NOW - 2 * DAY - UNSETTLED_DAYS * 86400, HI)]


def test_a_run_bounded_by_end_date_is_marked_bounded():
    run = make_run(bookmark(created=NOW - DAY, events=NOW - DAY, version=7))
    run.planner.scope = dataclasses.replace(run.planner.scope, bounded=True)
    assert planned(run).bounded is True
    assert planned(make_run(bookmark(created=NOW - DAY, events=NOW - DAY, version=7))).bounded is False


def test_a_resync_begun_by_an_older_tap_without_events_starts_from_its_account_s_created_bookmark():
    state = state_of(charges={"acct_1": {"resync": {"version": 5, "created": NOW - 9 * DAY},
                                         "created": NOW - 8 * DAY},
                              "default": {"created": NOW - 3 * DAY}})
    feed = planned(make_run(state), "charges", "acct_1")
    assert feed.resync and feed.started == NOW - 8 * DAY


def test_the_spans_completed_are_those_of_the_feed_s_account():
    state = state_of(charges={"acct_1": {"created": NOW - 10 * DAY, "events": HI, "version": 7,
                                         "done": [[NOW - 8 * DAY, NOW - 6 * DAY]]},
                              "default": {"done": [[NOW - 9 * DAY, NOW - 2 * DAY]]}})
    feed = planned(make_run(state), "charges", "acct_1")
    assert [s for s in segs(feed) if s[0] == "window"] == [("window", NOW - 10 * DAY, NOW - 8 * DAY),
                                                          ("window", NOW - 6 * DAY, HI)]


def test_a_resync_of_an_unselected_parent_begun_by_an_older_tap_starts_from_the_parent_s_created_bookmark():
    resync = {"version": 5, "created": NOW - 9 * DAY}
    state = state_of(customers={"acct_1": {"resync": resync, "created": NOW - 8 * DAY},
                                "default": {"created": NOW - 3 * DAY}})
    feed = planned(make_run(state, selected=("customer_tax_ids",)), "customers", "acct_1")
    assert feed.resync and feed.started == NOW - 8 * DAY


def test_a_full_table_s_first_read_of_an_account_saves_that_account_s_events_bookmark():
    run = table_run(selected=("payment_links",))
    planned(run, "payment_links", "acct_1")
    assert cursors(run, "payment_links", "acct_1") == {"events": HI}
    assert cursors(run, "payment_links") is None
