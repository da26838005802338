"""The sandbox's Reporting API: report types, run lifecycle, idempotency, validation, CSV files."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from conftest import SANDBOX_NOW, SandboxClient

DAY = 86400
ITEMIZED = "balance_change_from_activity.itemized.3"


@pytest.fixture
def rs():
    from stripe_sandbox import Sandbox

    with Sandbox(seed=11, scale=0.05, now=SANDBOX_NOW + 3600, history_days=30, accounts=1,
                 volumes={"balance_transactions": 300, "payouts": 5}) as sb:
        yield sb


class Api(SandboxClient):
    def post(self, data, key=None, **headers):
        if key:
            headers["Idempotency-Key"] = key
        return self.s.post(self.sb.url + "/v1/reporting/report_runs", data=data, headers=headers, timeout=10)

    def control(self, cmd, **body):
        return self.s.post(f"{self.sb.url}/_sandbox/reporting/{cmd}", json=body, timeout=10).json()


def run_form(report_type=ITEMIZED, start=SANDBOX_NOW - DAY, end=SANDBOX_NOW, columns=(), **params):
    data = [("report_type", report_type)]
    if start is not None:
        data.append(("parameters[interval_start]", str(start)))
    if end is not None:
        data.append(("parameters[interval_end]", str(end)))
    data += [(f"parameters[{k}]", str(v)) for k, v in params.items()]
    data += [("parameters[columns][]", c) for c in columns]
    return data


def finish(api, run_id):
    for _ in range(10):
        run = api.get(f"/v1/reporting/report_runs/{run_id}").json()
        if run["status"] != "pending":
            return run
    raise AssertionError("still pending")


def rows_of(api, run):
    body = api.get("/v1/" + run["result"]["url"].split("/v1/", 1)[1]).text
    return list(csv.DictReader(io.StringIO(body)))


def test_report_types(rs):
    api = Api(rs)
    body = api.get("/v1/reporting/report_types").json()
    assert body["object"] == "list" and body["has_more"] is False
    ids = {t["id"] for t in body["data"]}
    assert {"balance.summary.1", "payouts.itemized.3", "payout_reconciliation.itemized.5",
            "payout_reconciliation.by_id.itemized.4", "ending_balance_reconciliation.itemized.4"} <= ids
    assert {"balance_change_from_activity.itemized.1", "balance_change_from_activity.itemized.2"} <= ids
    one = next(t for t in body["data"] if t["id"] == ITEMIZED)
    assert one["data_available_end"] == SANDBOX_NOW  # start of the clock's UTC day
    assert one["data_available_start"] == (rs.store.start // DAY) * DAY
    assert one["version"] == 3 and "gross" in one["default_columns"] and "created" in one["default_columns"]
    older = next(t for t in body["data"] if t["id"] == "balance_change_from_activity.itemized.2")
    assert "created" not in older["default_columns"] and "created_utc" in older["default_columns"]
    assert api.get(f"/v1/reporting/report_types/{ITEMIZED}").json() == one
    assert api.get("/v1/reporting/report_types/nope.1").status_code == 404
    assert api.get("/v1/reporting/report_types", {"limit": 5}).status_code == 400
    assert rs.truth("report_types") == body["data"]  # the report_types stream's truth

    rs.app.reporting.lifecycle(lag=6 * 3600)
    rs.advance(DAY)
    moved = api.get(f"/v1/reporting/report_types/{ITEMIZED}").json()
    assert moved["data_available_end"] == SANDBOX_NOW + DAY - 6 * 3600


def test_run_lifecycle_and_csv(rs):
    api = Api(rs)
    created = api.post(run_form(columns=["balance_transaction_id", "gross", "fee", "net", "created", "created_utc"],
                                timezone="Europe/Paris")).json()
    assert created["status"] == "pending" and created["object"] == "reporting.report_run"
    assert created["parameters"]["interval_start"] == SANDBOX_NOW - DAY and created["parameters"]["payout"] is None
    assert created["parameters"]["timezone"] == "Europe/Paris"
    first = api.get(f"/v1/reporting/report_runs/{created['id']}").json()
    assert first["status"] == "pending"  # the default: succeeded on the 2nd poll
    run = api.get(f"/v1/reporting/report_runs/{created['id']}").json()
    assert run["status"] == "succeeded" and run["succeeded_at"] == rs.now
    result = run["result"]
    assert result["object"] == "file" and result["purpose"] == "finance_report_run"
    assert result["url"] == f"{rs.url}/v1/files/{result['id']}/contents"
    response = api.get(f"/v1/files/{result['id']}/contents")
    assert response.status_code == 200 and len(response.content) == result["size"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == ["balance_transaction_id", "gross", "fee", "net", "created", "created_utc"]
    truth = {b["id"]: b for b in rs.truth("balance_transactions")}
    expected = {i for i, b in truth.items() if SANDBOX_NOW - DAY <= b["created"] < SANDBOX_NOW
                and b["reporting_category"] != "payout"}
    assert {r["balance_transaction_id"] for r in rows} == expected
    for row in rows:
        b = truth[row["balance_transaction_id"]]
        assert Decimal(row["gross"]) == Decimal(b["amount"]) / 100 and Decimal(row["net"]) == Decimal(b["net"]) / 100
        assert row["created_utc"] != row["created"]  # Paris is UTC+1

    # other accounts do not see it; a run created without Idempotency-Key is a new run
    other = rs.account_ids()[0]
    assert api.get(f"/v1/reporting/report_runs/{created['id']}", **{"Stripe-Account": other}).status_code == 404
    assert api.get(f"/v1/files/{result['id']}/contents", **{"Stripe-Account": other}).status_code == 404
    assert api.post(run_form()).json()["id"] != created["id"]


def test_lifecycle_by_clock_and_controls(rs):
    api = Api(rs)
    rs.app.reporting.lifecycle(polls=100, seconds=120)
    run = api.post(run_form()).json()
    assert api.get(f"/v1/reporting/report_runs/{run['id']}").json()["status"] == "pending"
    rs.advance(120)
    assert api.get(f"/v1/reporting/report_runs/{run['id']}").json()["status"] == "succeeded"

    rs.app.reporting.lifecycle(polls=1)
    api.control("fail_next", report_type=ITEMIZED, error="Boom.")
    api.control("pending_next", report_type="payouts.summary.1")
    failed = finish(api, api.post(run_form()).json()["id"])
    assert failed["status"] == "failed" and failed["error"] == "Boom." and failed["result"] is None
    assert finish(api, api.post(run_form()).json()["id"])["status"] == "succeeded"  # only the next one failed
    stuck = api.post(run_form("payouts.summary.1")).json()
    for _ in range(5):
        assert api.get(f"/v1/reporting/report_runs/{stuck['id']}").json()["status"] == "pending"
    api.control("release", run=stuck["id"])
    assert api.get(f"/v1/reporting/report_runs/{stuck['id']}").json()["status"] == "succeeded"
    runs = api.control("runs", report_type=ITEMIZED)
    assert [r["status"] for r in runs] == ["succeeded", "failed", "succeeded"]


def test_idempotency(rs):
    api = Api(rs)
    first = api.post(run_form(), key="k-1")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    finish(api, first.json()["id"])
    again = api.post(run_form(), key="k-1")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()  # Stripe replays the first response (pending), same run
    assert len(rs.app.reporting.created_runs()) == 1
    other = api.post(run_form(start=SANDBOX_NOW - 2 * DAY), key="k-1")
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    # keys are per account
    elsewhere = api.post(run_form(), key="k-1", **{"Stripe-Account": rs.account_ids()[0]})
    assert elsewhere.status_code == 200 and elsewhere.json()["id"] != first.json()["id"]
    # validation failures are not saved under the key
    assert api.post(run_form(start=SANDBOX_NOW), key="k-2").status_code == 400
    assert api.post(run_form(), key="k-2").status_code == 200
    # keys expire after 24 h
    rs.advance(DAY + 1)
    assert api.post(run_form(), key="k-1").json()["id"] != first.json()["id"]


@pytest.mark.parametrize("form,message", [
    (run_form(start=SANDBOX_NOW, end=SANDBOX_NOW - DAY), "must be before"),
    (run_form(start=SANDBOX_NOW, end=SANDBOX_NOW), "must be before"),
    (run_form(end=SANDBOX_NOW + DAY), "data_available_end"),
    (run_form(start=SANDBOX_NOW - 400 * DAY), "data_available_start"),
    (run_form(start=None), "parameters[interval_start]"),
    (run_form("nope.summary.1"), "Invalid report_type"),
    (run_form(columns=["not_a_column"]), "Invalid column"),
    (run_form(bogus=1), "unknown parameter"),
    (run_form("balance_change_from_activity.itemized.2", timezone="Europe/Paris"), "timezone"),
    (run_form(timezone="Mars/Olympus"), "Invalid timezone"),
    (run_form("ending_balance_reconciliation.summary.1"), "interval_start] is not supported"),
    (run_form("payout_reconciliation.by_id.summary.1", start=None, end=None), "parameters[payout]"),
    (run_form("payout_reconciliation.by_id.summary.1", start=None, end=None, payout="po_missing"), "No such payout"),
])
def test_validation(rs, form, message):
    response = Api(rs).post(form)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


def test_metadata_columns_accepted(rs):
    api = Api(rs)
    run = finish(api, api.post(run_form(columns=["balance_transaction_id", "payment_metadata[order]"])).json()["id"])
    rows = rows_of(api, run)
    assert rows and all(r["payment_metadata[order]"] == "" for r in rows)


def test_payout_reports(rs):
    api = Api(rs)
    for p in rs.truth("payouts"):
        rs.update("payouts", p["id"], {"status": "paid", "automatic": True})
    payout = rs.create("payouts", {"status": "paid", "automatic": True, "amount": 5000, "currency": "usd",
                                   "arrival_date": rs.now - DAY + 10}, at=rs.now - 2 * DAY)
    run = finish(api, api.post(run_form("payout_reconciliation.by_id.itemized.4", start=None, end=None,
                                        payout=payout["id"])).json()["id"])
    rows = rows_of(api, run)
    assert rows and {r["automatic_payout_id"] for r in rows} == {payout["id"]}
    summary = finish(api, api.post(run_form("payout_reconciliation.by_id.summary.1", start=None, end=None,
                                            payout=payout["id"])).json()["id"])
    sums = rows_of(api, summary)
    assert sum(int(r["count"]) for r in sums) == len(rows)
    assert sum(Decimal(r["net"]) for r in sums) == sum(Decimal(r["net"]) for r in rows)
    itemized = finish(api, api.post(run_form("payouts.itemized.3", start=SANDBOX_NOW - DAY,
                                             end=SANDBOX_NOW)).json()["id"])
    prow = [r for r in rows_of(api, itemized) if r["payout_id"] == payout["id"]]
    assert len(prow) == 1 and prow[0]["gross"] == "-50.00" and prow[0]["payout_status"] == "paid"
    recon = finish(api, api.post(run_form("payout_reconciliation.itemized.5", start=SANDBOX_NOW - DAY,
                                          end=SANDBOX_NOW)).json()["id"])
    assert {r["balance_transaction_id"] for r in rows} <= {r["balance_transaction_id"] for r in rows_of(api, recon)}
    ending = finish(api, api.post(run_form("ending_balance_reconciliation.itemized.4", start=None,
                                           end=rs.now - 2 * DAY)).json()["id"])
    assert {r["balance_transaction_id"] for r in rows} <= {r["balance_transaction_id"] for r in rows_of(api, ending)}


def test_balance_summary_adds_up(rs):
    api = Api(rs)
    run = finish(api, api.post(run_form("balance.summary.1", start=SANDBOX_NOW - 5 * DAY)).json()["id"])
    rows = {r["category"]: r for r in rows_of(api, run) if r["currency"] == "usd"}
    assert set(rows) == {"starting_balance", "activity", "payouts", "ending_balance"}
    total = sum(Decimal(rows[c]["net_amount"]) for c in ("starting_balance", "activity", "payouts"))
    assert Decimal(rows["ending_balance"]["net_amount"]) == total


def test_generated_report_runs_list_and_retrieve_still_work(rs):
    api = Api(rs)
    listed = api.get("/v1/reporting/report_runs", {"limit": 3}).json()
    assert listed["object"] == "list" and listed["data"]
    generated = listed["data"][0]["id"]
    assert api.get(f"/v1/reporting/report_runs/{generated}").json()["id"] == generated
    assert api.get("/v1/reporting/report_runs/frr_missing").status_code == 404
