"""The state format: what `validate` accepts and refuses (with which one-line message), and how
`State` reads and moves cursors. In-process, so mutation testing sees these (docs/mutation.md)."""

import copy

import pytest

from tap_stripe.engine.state import DEFAULT_ACCOUNT, STATE_FORMAT, State, adopt, validate
from tap_stripe.errors import StateError


def one(cursors, stream="charges", account="acct_1"):
    return {"bookmarks": {stream: {"accounts": {account: cursors}}}}


def refused(state) -> str:
    with pytest.raises(StateError) as info:
        validate(state)
    return str(info.value)


def test_no_state_is_an_empty_state():
    assert validate(None) == {}
    assert validate("") == {}
    assert validate({}) == {}


def test_a_valid_state_is_returned_as_it_is_unknown_keys_included():
    state = {"bookmarks": {"charges": {"accounts": {
        "default": {"created": 1, "events": 2, "report": 3, "version": 4, "report_pending": ["po_1", "po_2"],
                    "resync": {"version": 5, "created": 6, "started": 7}, "later": {"x": 1}},
        "acct_1": {}}, "other": True}},
        "tap_stripe": {"state_format": STATE_FORMAT, "note": "kept"}, "singer": [1]}
    before = copy.deepcopy(state)
    assert validate(state) is state
    assert state == before


@pytest.mark.parametrize("state", [[], 5, "x", ["bookmarks"]])
def test_state_must_be_an_object(state):
    assert refused(state) == "state must be a JSON object with a 'bookmarks' object"


@pytest.mark.parametrize("bookmarks", [[], "x", 1, None])
def test_bookmarks_must_be_an_object(bookmarks):
    assert refused({"bookmarks": bookmarks}) == "state 'bookmarks' must be an object of stream name to bookmark"


def test_a_stream_bookmark_must_be_an_object():
    assert refused({"bookmarks": {"charges": {}, "customers": 1}}) == (
        "state bookmark of stream 'customers' must be an object")


def test_accounts_must_be_an_object_and_may_be_missing():
    assert validate({"bookmarks": {"charges": {}}}) == {"bookmarks": {"charges": {}}}
    assert refused({"bookmarks": {"charges": {"accounts": []}}}) == (
        "state 'bookmarks.charges.accounts' must be an object")


def test_an_account_s_cursors_must_be_an_object():
    assert refused(one("x")) == "state 'bookmarks.charges.accounts.acct_1' must be an object"


@pytest.mark.parametrize("key", ["created", "events", "report", "version", "pending", "reconciled"])
@pytest.mark.parametrize("value", [True, False, 1.5, 1.0, "1714521600", [1], {}])
def test_cursors_are_integer_unix_seconds(key, value):
    assert refused(one({key: value})) == (
        f"state 'bookmarks.charges.accounts.acct_1.{key}' must be unix seconds (an integer)")


@pytest.mark.parametrize("key", ["created", "events", "report", "version", "pending", "reconciled"])
def test_integer_and_null_cursors_are_accepted(key):
    for value in (0, 1714521600, None):
        assert validate(one({key: value})) == one({key: value})


@pytest.mark.parametrize("pending", [[], ["po_1"], ["po_1", "po_2"], None])
def test_report_pending_is_a_list_of_payout_ids(pending):
    assert validate(one({"report_pending": pending})) == one({"report_pending": pending})


@pytest.mark.parametrize("pending", ["po_1", [1], ["po_1", None], [""], ["po_1", ""], {"po_1": 1}])
def test_report_pending_refuses_anything_else(pending):
    assert refused(one({"report_pending": pending})) == (
        "state 'bookmarks.charges.accounts.acct_1.report_pending' must be a list of payout ids")


@pytest.mark.parametrize("resync", [{"version": 1}, {"version": 1, "created": 2},
                                    {"version": 1, "created": 2, "started": 3}])
def test_a_resync_in_progress_is_accepted(resync):
    assert validate(one({"resync": resync})) == one({"resync": resync})


@pytest.mark.parametrize("resync", [{}, {"created": 2}, {"version": "1"}, {"version": None},
                                    {"version": 1, "started": "3"}, {"version": 1, "started": None}, 1, [1]])
def test_a_malformed_resync_is_refused(resync):
    assert refused(one({"resync": resync})) == "state 'bookmarks.charges.accounts.acct_1.resync' is malformed"


def test_a_full_table_read_in_progress_is_accepted():
    table = {"version": 1, "cursor": "cus_9", "earlier": ["cus_8"], "streams": ["customers"]}
    assert validate(one({"table": table})) == one({"table": table})


@pytest.mark.parametrize("table", [{}, {"version": 1}, {"cursor": "cus_9"}, {"version": "1", "cursor": "cus_9"},
                                   {"version": 1, "cursor": 9}, {"version": None, "cursor": "cus_9"}, "cus_9", [1]])
def test_a_malformed_full_table_read_is_refused(table):
    assert refused(one({"table": table})) == "state 'bookmarks.charges.accounts.acct_1.table' is malformed"


def test_every_stream_and_account_is_checked():
    state = {"bookmarks": {"a": {"accounts": {"x": {"created": 1}}},
                           "b": {"accounts": {"x": {"created": 1}, "y": {"events": "bad"}}}}}
    assert refused(state) == "state 'bookmarks.b.accounts.y.events' must be unix seconds (an integer)"


def test_a_newer_state_format_is_refused():
    assert refused({"bookmarks": {}, "tap_stripe": {"state_format": STATE_FORMAT + 1}}) == (
        f"state format {STATE_FORMAT + 1} is newer than this tap understands ({STATE_FORMAT}); upgrade tap-stripe")


@pytest.mark.parametrize("ours", [{"state_format": STATE_FORMAT}, {"state_format": 0}, {}, {"state_format": "2"},
                                  "x", None])
def test_this_or_an_older_or_unreadable_format_is_accepted(ours):
    state = {"bookmarks": {}, "tap_stripe": ours}
    assert validate(state) is state


def test_state_marks_its_format_and_keeps_the_dict_it_was_given():
    data = {"tap_stripe": {"state_format": 0, "note": "kept"}, "other": 1}
    state = State(data)
    assert state.data is data
    assert data == {"bookmarks": {}, "tap_stripe": {"state_format": STATE_FORMAT, "note": "kept"}, "other": 1}
    assert State({}).data == {"bookmarks": {}, "tap_stripe": {"state_format": STATE_FORMAT}}
    kept = {"bookmarks": {"charges": {"accounts": {"default": {"created": 5}}}}}
    assert State(kept).data["bookmarks"] == {"charges": {"accounts": {"default": {"created": 5}}}}


def test_cursors_are_created_in_place_under_the_account_or_default():
    state = State({})
    cursors = state.cursors("charges", None)
    assert cursors == {}
    cursors["created"] = 7
    assert state.data["bookmarks"] == {"charges": {"accounts": {DEFAULT_ACCOUNT: {"created": 7}}}}
    assert DEFAULT_ACCOUNT == "default"
    state.cursors("charges", "acct_1")["events"] = 8
    assert state.data["bookmarks"]["charges"]["accounts"] == {"default": {"created": 7}, "acct_1": {"events": 8}}
    assert state.cursors("charges", None) is cursors


def test_get_reads_a_cursor_without_creating_anything():
    state = State({"bookmarks": {"charges": {"accounts": {"default": {"created": 7}, "acct_1": {"created": 9}}}}})
    assert state.get("charges", None, "created") == 7
    assert state.get("charges", "acct_1", "created") == 9
    assert state.get("charges", "acct_2", "created") is None
    assert state.get("charges", None, "events") is None
    assert state.get("customers", None, "created") is None
    assert state.data["bookmarks"] == {"charges": {"accounts": {"default": {"created": 7},
                                                                "acct_1": {"created": 9}}}}
    assert State({"bookmarks": {"charges": {}}}).get("charges", None, "created") is None


def test_advance_moves_a_cursor_forward_only():
    state = State({})
    state.advance("charges", None, "created", 10)
    assert state.get("charges", None, "created") == 10
    state.advance("charges", None, "created", 5)
    assert state.get("charges", None, "created") == 10
    state.advance("charges", None, "created", 12)
    assert state.get("charges", None, "created") == 12
    state.advance("charges", "acct_1", "created", 3)
    assert state.data["bookmarks"]["charges"]["accounts"] == {"default": {"created": 12}, "acct_1": {"created": 3}}
    zero = State({"bookmarks": {"charges": {"accounts": {"default": {"created": 0}}}}})
    zero.advance("charges", None, "created", -1)
    assert zero.get("charges", None, "created") == 0


def test_set_writes_or_removes_a_key():
    state = State({})
    state.set("charges", None, "resync", {"version": 1})
    assert state.data["bookmarks"] == {"charges": {"accounts": {"default": {"resync": {"version": 1}}}}}
    state.set("charges", None, "created", 0)
    state.set("charges", None, "created", 3)
    state.set("charges", None, "resync", None)
    assert state.data["bookmarks"] == {"charges": {"accounts": {"default": {"created": 3}}}}
    state.set("charges", None, "resync", None)  # removing what is not there is fine
    state.set("charges", "acct_1", "created", 2)
    assert state.get("charges", "acct_1", "created") == 2


# --------------------------------------------------------------------------- other taps' state
STREAMS = {"charges", "invoices", "customers"}
JAN_1 = 1704067200  # 2024-01-01T00:00:00Z


def ours(account="default", **streams):
    return {"bookmarks": {name: {"accounts": {account: cursors}} for name, cursors in streams.items()}}


@pytest.mark.parametrize("state", [None, "", [], 5, {}, {"bookmarks": {}}, {"bookmarks": []}, {"bookmarks": "x"},
                                   {"bookmarks": 5},
                                   {"bookmarks": {"charges": {"created": 1}}, "tap_stripe": {"state_format": 1}},
                                   {"bookmarks": {"charges": {"accounts": {}}, "invoices": {"created": 1}}},
                                   {"bookmarks": {"other": {"created": 1}, "charges": {"cursor": 1}}},
                                   {"bookmarks": {"charges": 5, "charges_events": {"updates_created": None}}}])
def test_a_state_that_is_ours_empty_or_unknown_is_left_as_it_is(state):
    before = copy.deepcopy(state)
    got, note = adopt(state, STREAMS, None)
    assert got is state and note is None and state == before


def test_singer_io_bookmarks_become_created_and_events():
    state = {"bookmarks": {"customers": 7, "unknown": {"created": 5}, "unknown_events": {"updates_created": 6},
                           "charges": {"created": 1700000000}, "charges_events": {"updates_created": 1700000100},
                           "invoices": {"date": "2024-01-01T00:00:00Z"}, "invoices_events": {"updates_created": JAN_1}},
             "currently_syncing": None}
    got, note = adopt(state, STREAMS, None)
    assert got == ours(charges={"created": 1700000000, "events": 1700000100},
                       invoices={"created": JAN_1, "events": JAN_1})
    assert note == "The state is from singer-io tap-stripe: continuing from its bookmarks of 2 stream(s) " \
                   "(charges, invoices)."


def test_events_alone_are_adopted_for_the_account_read():
    got, note = adopt({"bookmarks": {"charges_events": {"updates_created": "1700000100"}}}, STREAMS, "acct_1")
    assert got == ours("acct_1", charges={"events": 1700000100})
    assert note == "The state is from singer-io tap-stripe: continuing from its bookmarks of 1 stream(s) (charges)."


def test_sdk_bookmarks_take_the_oldest_partition():
    state = {"bookmarks": {"charges": {"replication_key_value": "2024-01-01T00:00:00+00:00",
                                       "partitions": [{"replication_key_value": JAN_1 - 500},
                                                      {"replication_key_value": None}, "x", {}]},
                           "customers": {"partitions": [{"replication_key_value": JAN_1 + 1.9},
                                                        {"replication_key_value": JAN_1 + 7}]}}}
    got, note = adopt(state, STREAMS, "acct_1")
    assert got == ours("acct_1", charges={"created": JAN_1 - 500}, customers={"created": JAN_1 + 1})
    assert note == "The state is from a Singer SDK tap: continuing from its bookmarks of 2 stream(s) " \
                   "(charges, customers)."


@pytest.mark.parametrize("value,seconds", [
    (JAN_1, JAN_1), (JAN_1 + 0.9, JAN_1), ("2024-01-01T00:00:00Z", JAN_1), ("2024-01-01T01:00:00+01:00", JAN_1),
    ("1704067200", JAN_1), ("2024-01-01T00:00:00", None), ("yesterday", None), ("-5", None), (True, None),
    (False, None), ([JAN_1], None), (None, None)])
def test_bookmark_values_read_as_unix_seconds(value, seconds):
    got, _ = adopt({"bookmarks": {"charges": {"replication_key_value": value}}}, STREAMS, None)
    assert got == (ours(charges={"created": seconds}) if seconds is not None else
                   {"bookmarks": {"charges": {"replication_key_value": value}}})


def test_created_and_date_both_count_and_the_oldest_wins():
    bookmark_ = {"date": JAN_1, "created": JAN_1 + 5, "replication_key_value": JAN_1 + 9}
    got, _ = adopt({"bookmarks": {"invoices": bookmark_}}, STREAMS, None)
    assert got == ours(invoices={"created": JAN_1})


@pytest.mark.parametrize("key", ["created", "date"])
def test_a_created_or_date_bookmark_alone_is_singer_io_s(key):
    got, note = adopt({"bookmarks": {"invoices": {key: JAN_1}}}, STREAMS, None)
    assert got == ours(invoices={"created": JAN_1})
    assert note == "The state is from singer-io tap-stripe: continuing from its bookmarks of 1 stream(s) (invoices)."


def test_a_singer_io_state_is_continued_from_through_the_cli(sandbox, run_tap):
    from conftest import SANDBOX_NOW, catalog_for, tap_config

    state = {"bookmarks": {"charges": {"created": SANDBOX_NOW - 86400},
                           "charges_events": {"updates_created": SANDBOX_NOW - 86400}}}
    result = run_tap(tap_config(sandbox, lookback_seconds=0), catalog=catalog_for(["charges"]), state=state)
    assert result.returncode == 0, result.stderr
    assert "The state is from singer-io tap-stripe" in result.stderr
    truth = [c for c in sandbox.truth("charges") if c["created"] >= SANDBOX_NOW - 86400]
    assert sorted(r["id"] for r in result.records("charges")) == sorted(c["id"] for c in truth)
    cursors = result.last_state["bookmarks"]["charges"]["accounts"]["default"]
    assert cursors["created"] == SANDBOX_NOW and cursors["events"] == SANDBOX_NOW


@pytest.mark.parametrize("done", [[], [[1, 2]], [[1, 2], [5, 9]]])
def test_spans_a_killed_run_completed_are_accepted(done):
    assert validate(one({"done": done})) == one({"done": done})
    resync = {"version": 1, "done": done}
    assert validate(one({"resync": resync})) == one({"resync": resync})


@pytest.mark.parametrize("done", ["1-2", [1, 2], [[1]], [[1, 2, 3]], [[2, 1]], [[1, 1]], [[True, 2]], [[1, 2.5]],
                                  [(1, 2)], [[1, "2"]], [[0, 1], [2]], [[0, 1], [3, 2]]])
def test_malformed_done_spans_are_refused(done):
    assert refused(one({"done": done})) == ("state 'bookmarks.charges.accounts.acct_1.done' must be a list of "
                                            "[from, to] pairs of unix seconds")
    assert refused(one({"resync": {"version": 1, "done": done}})) == (
        "state 'bookmarks.charges.accounts.acct_1.resync.done' must be a list of [from, to] pairs of unix seconds")
