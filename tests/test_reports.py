"""Financial reports (tap_stripe.reports) against the sandbox's Reporting API, over HTTP."""

from __future__ import annotations

from decimal import Decimal

import jsonschema
import pytest
from conftest import SANDBOX_KEY, SANDBOX_NOW

from tap_stripe.api.client import ClientOptions, Credentials, StripeClient
from tap_stripe.api.ratelimit import RateLimiter
from tap_stripe.errors import ReportFailed, StripeError
from tap_stripe.output.records import rfc3339
from tap_stripe.reports import plan as report_plan
from tap_stripe.reports.columns import (
    REPORT_STREAMS,
    REPORTS_BY_NAME,
    column_schema,
    report_key_properties,
    report_schema,
)
from tap_stripe.reports.parse import parse_report_csv
from tap_stripe.reports.plan import plan_report
from tap_stripe.reports.run import run_report
from tap_stripe.reports.task import ReportOptions, ReportTask

DAY = 86400
ACTIVITY = REPORTS_BY_NAME["report_balance_change_from_activity_itemized"]
BY_ID = REPORTS_BY_NAME["report_payout_reconciliation_by_id_itemized"]


@pytest.fixture
def rsb():
    """A sandbox with ~10 balance transactions a day and a few payouts."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=5, scale=0.05, now=SANDBOX_NOW, history_days=60,
                 volumes={"balance_transactions": 600, "payouts": 6}) as sb:
        yield sb


def make_client(sb) -> StripeClient:
    options = ClientOptions(api_url=sb.url, api_version="2023-08-16", user_agent="tap-stripe-tests",
                            connect_timeout=5, read_timeout=30, max_retries=2, max_backoff_seconds=0.05)
    return StripeClient(Credentials(SANDBOX_KEY), options, RateLimiter(5000, 5000))


def options(sb, **kw) -> ReportOptions:
    return ReportOptions(**{"files_url": sb.url, "poll_interval": 0.01, "poll_max_interval": 0.05,
                            "poll_timeout": 10, **kw})


def validate(spec, records, columns=None):
    schema = report_schema(spec, columns)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    for record in records:
        assert set(record) == set(schema["properties"]), (spec.name, set(record) ^ set(schema["properties"]))
        errors = list(validator.iter_errors(record))
        assert not errors, (spec.name, record, errors[0].message)


def paid_payouts(sb, *offsets):
    """Create paid automatic payouts `offsets` seconds before the sandbox clock; make generated ones paid."""
    for payout in sb.truth("payouts"):
        if payout["status"] in ("pending", "in_transit"):
            sb.update("payouts", payout["id"], {"status": "paid"})
    out = []
    for offset in offsets:
        at = sb.now - offset
        out.append(sb.create("payouts", {"status": "paid", "automatic": True, "amount": 12345, "currency": "usd",
                                         "arrival_date": at + DAY}, at=at))
    return out


def run_all(client, tasks, opts):
    return [record for task in tasks for record in run_report(client, task, opts)]


# --------------------------------------------------------------------------- discovery
@pytest.mark.parametrize("spec", REPORT_STREAMS, ids=lambda s: s.name)
def test_schema_offline(spec):
    schema = report_schema(spec)
    jsonschema.Draft7Validator.check_schema(schema)
    for key in report_key_properties(spec):
        assert key in schema["properties"]
    for column, kind in spec.columns:
        assert schema["properties"][column] == column_schema(kind)
    assert schema["properties"]["_account_id"] == {"type": ["string", "null"]}
    assert schema["properties"]["_updated_at"]["format"] == "date-time"
    custom = report_schema(spec, ["gross", "payment_metadata[order]", "created_utc"])
    assert custom["properties"]["gross"] == {"type": ["number", "null"]}
    assert custom["properties"]["payment_metadata[order]"] == {"type": ["string", "null"]}
    assert custom["properties"]["created_utc"]["format"] == "date-time"


def test_eleven_families():
    assert {s.family for s in REPORT_STREAMS} == {
        "balance.summary", "balance_change_from_activity.summary", "balance_change_from_activity.itemized",
        "payouts.summary", "payouts.itemized", "payout_reconciliation.summary", "payout_reconciliation.itemized",
        "payout_reconciliation.by_id.summary", "payout_reconciliation.by_id.itemized",
        "ending_balance_reconciliation.summary", "ending_balance_reconciliation.itemized"}


# --------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("spec", REPORT_STREAMS, ids=lambda s: s.name)
def test_each_stream_end_to_end(rsb, spec):
    paid_payouts(rsb, 3 * DAY, 2 * DAY)
    client = make_client(rsb)
    opts = options(rsb)
    start = rsb.now - 4 * DAY
    tasks = plan_report(client, spec, None, None, start, opts)
    assert tasks, spec.name
    if spec.params == "payout":
        assert len(tasks) >= 2 and all("payout" in t.parameters for t in tasks)
    else:
        assert len(tasks) == 4  # one per complete UTC day
        assert tasks[-1].bookmark_after == rsb.now  # data_available_end: the sandbox's midnight
    assert tasks[0].report_type.startswith(spec.family + ".")
    records = run_all(client, tasks, opts)
    assert records, spec.name
    validate(spec, records)
    ids = [r["_row_id"] for r in records]
    assert len(ids) == len(set(ids)), "row ids are unique"
    assert all(r["_account_id"] is None and r["_updated_at"] for r in records)


def test_newest_version_default_columns_and_exact_decimals(rsb):
    client = make_client(rsb)
    opts = options(rsb)
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - 2 * DAY, opts)
    assert {t.report_type for t in tasks} == {"balance_change_from_activity.itemized.3"}
    records = run_all(client, tasks, opts)
    truth = {b["id"]: b for b in rsb.truth("balance_transactions")}
    assert records
    for record in records:
        txn = truth[record["balance_transaction_id"]]
        assert isinstance(record["gross"], Decimal) and record["gross"] == Decimal(txn["amount"]) / 100
        assert record["net"] == Decimal(txn["net"]) / 100 and record["fee"] == Decimal(txn["fee"]) / 100
        assert record["created_utc"] == rfc3339(txn["created"]) == record["created"]
        assert record["_row_id"] == txn["id"]
        assert record["_interval_end"] in (rfc3339(rsb.now - DAY), rfc3339(rsb.now))
    assert any(r["gross"] == Decimal("%.2f" % (truth[r["balance_transaction_id"]]["amount"] / 100)) for r in records)


def test_decimal_string_is_exact():
    task = ReportTask(ACTIVITY, None, "balance_change_from_activity.itemized.3",
                              {"interval_start": 0, "interval_end": DAY, "columns": ["balance_transaction_id", "gross",
                                                                                    "created", "count"]}, DAY)
    body = b"balance_transaction_id,gross,created,count\ntxn_1,12.34,2026-01-01 01:02:03,7\ntxn_2,,,\n"
    rows = parse_report_csv(task, body, "frr_1", 100)
    assert rows[0]["gross"] == Decimal("12.34") and str(rows[0]["gross"]) == "12.34"
    assert rows[0]["created"] == "2026-01-01T01:02:03Z" and rows[0]["count"] == 7
    assert rows[1]["gross"] is None and rows[1]["created"] is None
    with pytest.raises(ReportFailed, match="row 1 column gross"):
        parse_report_csv(task, body.replace(b"12.34", b"12.3.4"), "frr_1", 100)


def test_pinned_version_and_columns(rsb):
    client = make_client(rsb)
    opts = options(rsb, versions={ACTIVITY.name: "2"}, timezone="Europe/Paris")
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, opts)
    assert tasks[0].report_type == "balance_change_from_activity.itemized.2"
    assert "timezone" not in tasks[0].parameters  # .2 does not take one
    assert "created" not in tasks[0].parameters["columns"] and "created_utc" in tasks[0].parameters["columns"]
    records = run_all(client, tasks, opts)
    validate(ACTIVITY, records)
    assert all(r["created"] is None and r["created_utc"] for r in records)

    with pytest.raises(ReportFailed, match="not offered"):
        plan_report(client, ACTIVITY, None, None, None, options(rsb, versions={ACTIVITY.name: "9"}))

    custom = ["balance_transaction_id", "net", "payment_metadata[order]"]
    opts = options(rsb, columns={ACTIVITY.name: custom})
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, opts)
    records = run_all(client, tasks, opts)
    validate(ACTIVITY, records, custom)
    assert records and set(records[0]) >= set(custom)


def test_timezone_days_and_local_columns(rsb):
    client = make_client(rsb)
    opts = options(rsb, timezone="America/New_York")
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - 3 * DAY, opts)
    offset = 5 * 3600  # New York is UTC-5 in winter: local midnights are 05:00 UTC
    assert [t.parameters["interval_end"] % DAY for t in tasks] == [offset] * len(tasks)
    assert tasks[0].parameters["interval_start"] == rsb.now - 3 * DAY
    assert all(t.parameters["timezone"] == "America/New_York" for t in tasks)
    records = run_all(client, tasks, opts)
    assert records
    for record in records:
        assert record["created"] == record["created_utc"]  # local time converted back to UTC
        assert record["available_on"] == record["available_on_utc"]


def test_sync_interval(rsb):
    client = make_client(rsb)
    opts = options(rsb, interval="sync")
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - 3 * DAY - 100, opts)
    assert len(tasks) == 1
    assert tasks[0].parameters["interval_start"] == rsb.now - 3 * DAY - 100
    assert tasks[0].parameters["interval_end"] == tasks[0].bookmark_after == rsb.now
    assert plan_report(client, ACTIVITY, None, rsb.now, None, opts) == []
    ending = REPORTS_BY_NAME["report_ending_balance_reconciliation_itemized"]
    tasks = plan_report(client, ending, None, None, rsb.now - 3 * DAY, opts)
    assert [t.parameters.get("interval_start") for t in tasks] == [None]
    assert tasks[0].parameters["interval_end"] == rsb.now


def test_start_defaults_to_data_available_start(rsb):
    client = make_client(rsb)
    tasks = plan_report(client, ACTIVITY, None, None, None, options(rsb, interval="sync"))
    assert tasks[0].parameters["interval_start"] == (rsb.store.start // DAY) * DAY


# --------------------------------------------------------------------------- incremental
def test_incremental_next_day(rsb):
    opts = options(rsb)
    client = make_client(rsb)
    tasks = plan_report(client, ACTIVITY, None, None, rsb.now - 2 * DAY, opts)
    run_all(client, tasks, opts)
    bookmark = tasks[-1].bookmark_after
    assert bookmark == rsb.now
    assert plan_report(make_client(rsb), ACTIVITY, None, bookmark, rsb.now - 2 * DAY, opts) == []

    rsb.advance(DAY)
    client = make_client(rsb)
    tasks = plan_report(client, ACTIVITY, None, bookmark, rsb.now - 30 * DAY, opts)
    assert [(t.parameters["interval_start"], t.parameters["interval_end"]) for t in tasks] == \
        [(bookmark, bookmark + DAY)]
    records = run_all(client, tasks, opts)
    created = {b["id"] for b in rsb.truth("balance_transactions") if bookmark <= b["created"] < bookmark + DAY
               and b["reporting_category"] != "payout"}
    assert {r["balance_transaction_id"] for r in records} == created


# --------------------------------------------------------------------------- failures
def test_failed_run_then_retry(rsb):
    client = make_client(rsb)
    opts = options(rsb)
    task = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, opts)[0]
    rsb.app.reporting.fail_next(task.report_type, error="Something broke\nwhile generating")
    with pytest.raises(ReportFailed) as failure:
        run_report(client, task, opts)
    message = str(failure.value)
    assert "\n" not in message and "failed: Something broke while generating" in message
    assert ACTIVITY.name in message and "retries this interval" in message
    assert isinstance(failure.value, StripeError)

    # Right away, the same key replays the same failed run: no second run is created.
    with pytest.raises(ReportFailed):
        run_report(client, task, opts)
    assert len(rsb.app.reporting.created_runs(report_type=task.report_type)) == 1

    # Next sync (later): the same interval, the failed run is recognised and run again.
    rsb.advance(600)
    again = plan_report(make_client(rsb), ACTIVITY, None, None, rsb.now - 600 - DAY, opts)[0]
    assert again.parameters == task.parameters and again.idempotency_key == task.idempotency_key
    records = run_report(make_client(rsb), again, opts)
    runs = rsb.app.reporting.created_runs(report_type=task.report_type)
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    assert {r["_report_run"] for r in records} <= {runs[1]["id"]}


def test_pending_at_poll_limit_reuses_the_same_run(rsb):
    client = make_client(rsb)
    task = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, options(rsb))[0]
    rsb.app.reporting.pending_next(task.report_type)
    with pytest.raises(ReportFailed) as failure:
        run_report(client, task, options(rsb, poll_timeout=0.2))
    assert "still pending after 0.2s" in str(failure.value) and "\n" not in str(failure.value)
    runs = rsb.app.reporting.created_runs(report_type=task.report_type)
    assert len(runs) == 1 and runs[0]["status"] == "pending"

    # The bookmark did not move: the next sync plans the same interval, with the same key.
    rsb.app.reporting.release()
    retry = plan_report(make_client(rsb), ACTIVITY, None, None, rsb.now - DAY, options(rsb))[0]
    assert retry.idempotency_key == task.idempotency_key
    records = run_report(make_client(rsb), retry, options(rsb))
    assert records and {r["_report_run"] for r in records} == {runs[0]["id"]}
    assert len(rsb.app.reporting.created_runs(report_type=task.report_type)) == 1


def test_crash_between_create_and_read(rsb):
    client = make_client(rsb)
    opts = options(rsb)
    task = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, opts)[0]
    real = client.request

    def crash_after_post(method, path, **kw):
        body = real(method, path, **kw)
        if method == "POST":
            raise RuntimeError("killed")
        return body

    client.request = crash_after_post
    with pytest.raises(RuntimeError):
        run_report(client, task, opts)

    fresh = make_client(rsb)  # the next run of the tap, from the same bookmark
    again = plan_report(fresh, ACTIVITY, None, None, rsb.now - DAY, opts)
    assert len(again) == 1
    records = run_report(fresh, again[0], opts)
    runs = rsb.app.reporting.created_runs(report_type=task.report_type)
    assert len(runs) == 1, "one run for the interval"
    assert records and {r["_report_run"] for r in records} == {runs[0]["id"]}
    replayed = [r for r in rsb.requests if r["method"] == "POST" and r["path"] == "/v1/reporting/report_runs"]
    assert len(replayed) == 2


def test_sandbox_400_is_a_stripe_error(rsb):
    client = make_client(rsb)
    task = plan_report(client, ACTIVITY, None, None, rsb.now - DAY, options(rsb))[0]
    task.parameters["interval_end"] = rsb.now + DAY  # beyond data_available_end
    with pytest.raises(StripeError, match="data_available_end"):
        run_report(client, task, options(rsb))


# --------------------------------------------------------------------------- single payouts
def test_single_payout_reports_run_per_payout(rsb):
    first, second, third = paid_payouts(rsb, 5 * DAY, 3 * DAY, 3 * DAY)  # the last two in the same second
    client = make_client(rsb)
    opts = options(rsb)
    tasks = plan_report(client, BY_ID, None, None, rsb.now - 5 * DAY, opts)
    assert [t.parameters["payout"] for t in tasks] == [first["id"], *sorted([second["id"], third["id"]])]
    assert [t.bookmark_after for t in tasks] == [first["created"], second["created"] - 1, second["created"]]
    for task in tasks:
        records = run_report(client, task, opts)
        validate(BY_ID, records)
        assert all(r["_payout"] == task.parameters["payout"] for r in records)
        assert all(r["automatic_payout_id"] == task.parameters["payout"] for r in records)
        assert all(r["_row_id"] == f"{task.parameters['payout']}/{r['balance_transaction_id']}" for r in records)
    assert plan_report(make_client(rsb), BY_ID, None, tasks[-1].bookmark_after, None, opts) == []
    # A crash after the first sibling: the second is not skipped.
    resumed = plan_report(make_client(rsb), BY_ID, None, tasks[1].bookmark_after, None, opts)
    assert [t.parameters["payout"] for t in resumed] == [tasks[1].parameters["payout"], tasks[2].parameters["payout"]]

    summary = REPORTS_BY_NAME["report_payout_reconciliation_by_id_summary"]
    later = paid_payouts(rsb, DAY)[0]
    tasks = plan_report(make_client(rsb), summary, None, tasks[-1].bookmark_after, None, opts)
    assert [t.parameters["payout"] for t in tasks] == [later["id"]]
    assert "columns" in tasks[0].parameters and "timezone" not in tasks[0].parameters


def test_payout_in_transit_holds_the_plan(rsb):
    first = paid_payouts(rsb, 4 * DAY)[0]
    waiting = rsb.create("payouts", {"status": "in_transit", "automatic": True, "arrival_date": rsb.now + DAY},
                         at=rsb.now - 3 * DAY)
    after = rsb.create("payouts", {"status": "paid", "automatic": True, "arrival_date": rsb.now},
                       at=rsb.now - 2 * DAY)
    opts = options(rsb)
    tasks = plan_report(make_client(rsb), BY_ID, None, None, rsb.now - 5 * DAY, opts)
    assert [t.parameters["payout"] for t in tasks] == [first["id"]]
    rsb.update("payouts", waiting["id"], {"status": "paid"})
    tasks = plan_report(make_client(rsb), BY_ID, None, tasks[-1].bookmark_after, None, opts)
    assert [t.parameters["payout"] for t in tasks] == [waiting["id"], after["id"]]


def test_connected_account():
    from stripe_sandbox import Sandbox

    with Sandbox(seed=6, scale=0.05, now=SANDBOX_NOW, history_days=20, accounts=1,
                 volumes={"balance_transactions": 200}) as sb:
        account = sb.account_ids()[0]
        client = make_client(sb)
        opts = options(sb)
        tasks = plan_report(client, ACTIVITY, account, None, sb.now - 2 * DAY, opts)
        records = run_all(client, tasks, opts)
        assert records and {r["_account_id"] for r in records} == {account}
        truth = {b["id"] for b in sb.truth("balance_transactions", account)}
        assert {r["balance_transaction_id"] for r in records} <= truth
        assert tasks[0].idempotency_key != plan_report(client, ACTIVITY, None, None, sb.now - 2 * DAY,
                                                       opts)[0].idempotency_key
        assert sb.app.reporting.created_runs(account=account)


# ---------------------------------------------------------------------------------------------
# Through the tap, in a subprocess, like a pipeline
# ---------------------------------------------------------------------------------------------

def test_report_streams_through_the_tap_are_incremental(run_tap):
    from conftest import SANDBOX_NOW, catalog_for, tap_config
    from jsonschema import Draft202012Validator, FormatChecker

    from stripe_sandbox import Sandbox

    streams = ["report_balance_summary", "report_payouts_itemized", "report_ending_balance_reconciliation_summary"]
    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, history_days=20) as sandbox:
        config = tap_config(sandbox, start_date="2025-12-28T00:00:00Z")
        first = run_tap(config, catalog=catalog_for(streams))
        assert first.returncode == 0, first.stderr[-2000:]
        schemas = {m["stream"]: m["schema"] for m in first.messages if m["type"] == "SCHEMA"}
        for message in first.messages:
            if message["type"] == "RECORD":
                validator = Draft202012Validator(schemas[message["stream"]], format_checker=FormatChecker())
                assert not list(validator.iter_errors(message["record"]))
        days = {r["_interval_start"] for r in first.records("report_balance_summary")}
        assert len(days) >= 3
        bookmark = first.last_state["bookmarks"]["report_balance_summary"]["accounts"]["default"]["report"]
        sandbox.advance(86400)
        second = run_tap(config, catalog=catalog_for(streams), state=first.last_state)
        assert second.returncode == 0, second.stderr[-2000:]
        new_days = {r["_interval_start"] for r in second.records("report_balance_summary")}
        assert len(new_days) == 1 and not new_days & days, "the second run reads only the new day"
        cursors = second.last_state["bookmarks"]["report_balance_summary"]["accounts"]["default"]
        assert cursors["report"] == bookmark + 86400
    assert '"net_amount":' in first.stdout and '"net_amount":"' not in first.stdout, "amounts are JSON numbers"


def test_a_failed_report_run_skips_the_stream_and_keeps_its_interval(run_tap):
    from conftest import SANDBOX_NOW, catalog_for, tap_config

    from stripe_sandbox import Sandbox

    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, history_days=20) as sandbox:
        sandbox.app.reporting.fail_next("balance.summary.1")
        config = tap_config(sandbox, start_date="2025-12-30T00:00:00Z")
        result = run_tap(config, catalog=catalog_for(["report_balance_summary", "charges"]))
    assert result.returncode == 0
    assert "Skipping stream report_balance_summary" in result.stderr and "failed" in result.stderr
    assert "report_balance_summary" not in result.last_state["bookmarks"]
    assert result.records("charges")


# --------------------------------------------------------------------------- payouts not yet paid
def only_new_payouts(sb):
    """Cancel the generated payouts, so only the test's payouts settle balance transactions."""
    for payout in sb.truth("payouts"):
        sb.update("payouts", payout["id"], {"status": "canceled"})


def payout(sb, status, created, arrival, **fields):
    return sb.create("payouts", {"status": status, "automatic": True, "amount": 12345, "currency": "usd",
                                 "arrival_date": arrival, **fields}, at=created)


def same_second(sb, created, first_status, second_status, second_arrival):
    """Two payouts created in one second; the one the plan meets first (by id) gets `first_status`."""
    first, second = sorted((payout(sb, "paid", created, created + DAY) for _ in range(2)), key=lambda p: p["id"])
    sb.update("payouts", first["id"], {"status": first_status})
    sb.update("payouts", second["id"], {"status": second_status, "arrival_date": second_arrival})
    return first, second


def payout_ids(tasks):
    return [t.parameters["payout"] for t in tasks]


def settled_by(sb, previous, payout):
    """Balance transactions the sandbox settles in `payout` (paid after `previous`)."""
    return {b["id"] for b in sb.truth("balance_transactions") if b["reporting_category"] != "payout"
            and previous["created"] < b["available_on"] <= payout["created"]}


def test_payout_in_transit_in_the_same_second_as_a_paid_one_is_not_skipped(rsb):
    only_new_payouts(rsb)
    at = rsb.now - 3 * DAY
    paid, waiting = same_second(rsb, at, "paid", "in_transit", rsb.now + DAY)  # arrives tomorrow: holds the plan
    opts = options(rsb)
    tasks = plan_report(make_client(rsb), BY_ID, None, None, at - DAY, opts)
    assert payout_ids(tasks) == [paid["id"]]
    assert tasks[0].bookmark_after == at - 1, "the second still holds a payout in transit"
    run_all(make_client(rsb), tasks, opts)

    rsb.update("payouts", waiting["id"], {"status": "paid"})
    again = plan_report(make_client(rsb), BY_ID, None, tasks[-1].bookmark_after, None, opts)
    assert payout_ids(again) == [paid["id"], waiting["id"]]  # the first is read again (same rows, same keys)
    assert again[-1].bookmark_after == at
    records = run_report(make_client(rsb), again[-1], opts)
    assert {r["_payout"] for r in records} <= {waiting["id"]}


def test_payout_stuck_in_the_same_second_as_a_paid_one_is_remembered(rsb):
    only_new_payouts(rsb)
    at = rsb.now - 20 * DAY
    paid, stuck = same_second(rsb, at, "paid", "in_transit", at + DAY)  # due 19 days ago
    opts = options(rsb)
    tasks = plan_report(make_client(rsb), BY_ID, None, None, at - DAY, opts)
    assert payout_ids(tasks) == [paid["id"]]
    assert (tasks[0].bookmark_after, tasks[0].pending_after) == (at, (stuck["id"],))

    rsb.update("payouts", stuck["id"], {"status": "paid"})
    again = plan_report(make_client(rsb), BY_ID, None, at, None, opts, list(tasks[0].pending_after))
    assert payout_ids(again) == [stuck["id"]]
    assert (again[0].bookmark_after, again[0].pending_after) == (at, ())


def test_payout_stuck_in_transit_is_remembered_and_read_once_paid(rsb):
    only_new_payouts(rsb)
    now = rsb.now
    first = payout(rsb, "paid", now - 20 * DAY, now - 19 * DAY)
    stuck = payout(rsb, "in_transit", now - 16 * DAY, now - 15 * DAY)
    later = payout(rsb, "paid", now - 10 * DAY, now - 9 * DAY)
    opts = options(rsb)
    tasks = plan_report(make_client(rsb), BY_ID, None, None, now - 21 * DAY, opts)
    assert payout_ids(tasks) == [first["id"], later["id"]], "a stuck payout does not hold later ones"
    assert tasks[-1].bookmark_after == later["created"] and tasks[-1].pending_after == (stuck["id"],)
    assert all(t.pending_after == (stuck["id"],) for t in tasks)
    run_all(make_client(rsb), tasks, opts)
    bookmark, pending = tasks[-1].bookmark_after, list(tasks[-1].pending_after)
    crashed = (tasks[0].bookmark_after, list(tasks[0].pending_after))  # the state after the first task only

    # Still in transit: nothing to read, and it is still remembered (re-read by id, not listed).
    rsb.advance(DAY)
    assert plan_report(make_client(rsb), BY_ID, None, bookmark, None, opts, pending) == []
    assert any(r["path"] == f"/v1/payouts/{stuck['id']}" for r in rsb.requests)

    # Paid at last: its report is read, the bookmark stays, the payout is forgotten.
    rsb.update("payouts", stuck["id"], {"status": "paid"})
    resumed = plan_report(make_client(rsb), BY_ID, None, *crashed[:1], None, opts, crashed[1])
    assert payout_ids(resumed) == [stuck["id"], later["id"]], "remembered and listed again: read once"
    assert [t.pending_after for t in resumed] == [(), ()]
    tasks = plan_report(make_client(rsb), BY_ID, None, bookmark, None, opts, pending)
    assert payout_ids(tasks) == [stuck["id"]]
    assert (tasks[0].bookmark_after, tasks[0].pending_after) == (bookmark, ())
    records = run_report(make_client(rsb), tasks[0], opts)
    validate(BY_ID, records)
    expected = settled_by(rsb, first, stuck)
    assert expected and {r["balance_transaction_id"] for r in records} == expected
    assert {r["_payout"] for r in records} == {stuck["id"]}


def test_remembered_payout_failed_canceled_or_missing_is_forgotten(rsb):
    only_new_payouts(rsb)
    now = rsb.now
    failed = payout(rsb, "in_transit", now - 16 * DAY, now - 15 * DAY)
    canceled = payout(rsb, "pending", now - 15 * DAY, now - 14 * DAY)
    kept = payout(rsb, "in_transit", now - 14 * DAY, now - 13 * DAY)
    bookmark = now - 12 * DAY
    new = payout(rsb, "paid", now - 5 * DAY, now - 4 * DAY)
    rsb.update("payouts", failed["id"], {"status": "failed"})
    rsb.update("payouts", canceled["id"], {"status": "canceled"})
    pending = [failed["id"], canceled["id"], "po_gone", kept["id"]]
    tasks = plan_report(make_client(rsb), BY_ID, None, bookmark, None, options(rsb), pending)
    assert payout_ids(tasks) == [new["id"]]
    assert (tasks[0].bookmark_after, tasks[0].pending_after) == (new["created"], (kept["id"],))

    with pytest.raises(ReportFailed, match="report_pending"):
        plan_report(make_client(rsb), BY_ID, None, bookmark, None, options(rsb), "po_1")


def test_remembered_payouts_are_bounded(rsb, monkeypatch):
    monkeypatch.setattr(report_plan, "MAX_PENDING_PAYOUTS", 2)
    only_new_payouts(rsb)
    now = rsb.now
    p0 = payout(rsb, "paid", now - 30 * DAY, now - 29 * DAY)
    s1 = payout(rsb, "in_transit", now - 28 * DAY, now - 27 * DAY)
    s2 = payout(rsb, "pending", now - 26 * DAY, now - 25 * DAY)
    p1 = payout(rsb, "paid", now - 24 * DAY, now - 23 * DAY)
    s3 = payout(rsb, "in_transit", now - 22 * DAY, now - 21 * DAY)
    p2 = payout(rsb, "paid", now - 20 * DAY, now - 19 * DAY)
    opts = options(rsb)
    tasks = plan_report(make_client(rsb), BY_ID, None, None, now - 31 * DAY, opts)
    assert payout_ids(tasks) == [p0["id"], p1["id"]], "no room for a third: the plan waits at it"
    assert (tasks[-1].bookmark_after, tasks[-1].pending_after) == (p1["created"], (s1["id"], s2["id"]))

    rsb.update("payouts", s1["id"], {"status": "canceled"})
    tasks = plan_report(make_client(rsb), BY_ID, None, p1["created"], None, opts, [s1["id"], s2["id"]])
    assert payout_ids(tasks) == [p2["id"]]
    assert (tasks[-1].bookmark_after, tasks[-1].pending_after) == (p2["created"], (s2["id"], s3["id"]))


def test_stuck_payout_through_the_tap_is_kept_in_state_and_read_once_paid(run_tap):
    from conftest import catalog_for, tap_config

    from stripe_sandbox import Sandbox

    stream = BY_ID.name
    with Sandbox(seed=3, scale=0.05, now=SANDBOX_NOW, history_days=30, volumes={"payouts": 4}) as sandbox:
        only_new_payouts(sandbox)
        now = sandbox.now
        first = payout(sandbox, "paid", now - 20 * DAY, now - 19 * DAY)
        stuck = payout(sandbox, "in_transit", now - 16 * DAY, now - 15 * DAY)
        later = payout(sandbox, "paid", now - 10 * DAY, now - 9 * DAY)
        config = tap_config(sandbox, start_date="2025-12-05T00:00:00Z")
        one = run_tap(config, catalog=catalog_for([stream]))
        assert one.returncode == 0, one.stderr[-2000:]
        assert {r["_payout"] for r in one.records(stream)} == {first["id"], later["id"]}
        cursors = one.last_state["bookmarks"][stream]["accounts"]["default"]
        assert cursors == {"report": later["created"], "report_pending": [stuck["id"]]}
        assert f"payout {stuck['id']} is still in_transit" in one.stderr

        sandbox.update("payouts", stuck["id"], {"status": "paid"})
        two = run_tap(config, catalog=catalog_for([stream]), state=one.last_state)
        assert two.returncode == 0, two.stderr[-2000:]
        assert {r["_payout"] for r in two.records(stream)} == {stuck["id"]}
        assert two.last_state["bookmarks"][stream]["accounts"]["default"] == {"report": later["created"]}
