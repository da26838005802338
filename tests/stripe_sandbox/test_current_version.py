"""The sandbox serves the API version of Stripe's Python SDK (2026-10-28.endive): the lists that
version added (billing meters and credit grants, entitlements, tax registrations, climate
orders, invoice payments, …), in that version's shapes, with its `created` filters, parents and
event types, and answers `Stripe-Version` as Stripe does."""

import requests
from conftest import SANDBOX_NOW, SandboxClient

from stripe_sandbox import Sandbox
from stripe_sandbox.resources import API_VERSION, NOT_SERVED
from stripe_sandbox.table import SPECS

# Lists of the current version that the 2023-08-16 spec did not have (list-endpoints.json's
# latest_only_endpoints, and the SDK's newer ones), each served as a table.
NEWER = {
    "/v1/billing/alerts": "billing_alerts",
    "/v1/billing/credit_balance_transactions": "billing_credit_balance_transactions",
    "/v1/billing/credit_grants": "billing_credit_grants", "/v1/billing/meters": "billing_meters",
    "/v1/climate/orders": "climate_orders", "/v1/climate/products": "climate_products",
    "/v1/climate/suppliers": "climate_suppliers",
    "/v1/entitlements/active_entitlements": "entitlements_active_entitlements",
    "/v1/entitlements/features": "entitlements_features",
    "/v1/financial_connections/transactions": "financial_connections_transactions",
    "/v1/forwarding/requests": "forwarding_requests", "/v1/invoice_payments": "invoice_payments",
    "/v1/invoice_rendering_templates": "invoice_rendering_templates",
    "/v1/issuing/personalization_designs": "issuing_personalization_designs",
    "/v1/issuing/physical_bundles": "issuing_physical_bundles", "/v1/issuing/tokens": "issuing_tokens",
    "/v1/payment_attempt_records": "payment_attempt_records",
    "/v1/payment_intents/{intent}/amount_details_line_items": "payment_intent_amount_details_line_items",
    "/v1/payment_method_configurations": "payment_method_configurations", "/v1/payment_records": "payment_records",
    "/v1/products/{product}/features": "product_features", "/v1/tax/registrations": "tax_registrations",
    "/v1/tax_ids": "tax_ids", "/v1/apps/installs": "apps_installs",
    "/v1/billing/feedback_options": "billing_feedback_options",
    "/v1/product_catalog/trial_offers": "product_catalog_trial_offers", "/v1/tax/locations": "tax_locations",
    "/v1/three_d_secure/authentications": "three_d_secure_authentications",
}


def test_the_version_and_its_lists():
    assert API_VERSION == "2026-10-28.endive"
    lists = {s.path: s.name for s in SPECS if s.kind == "list"}
    assert {p: lists.get(p) for p in NEWER} == NEWER
    # computed views the sandbox leaves out, each with its reason
    assert "/v1/billing/meters/{id}/event_summaries" in NOT_SERVED
    # removed since 2023-08-16 (legacy usage records, issuing settlements, deprecated aliases)
    assert not {"/v1/subscription_items/{subscription_item}/usage_record_summaries", "/v1/issuing/settlements",
                "/v1/customers/{customer}/cards"} & set(lists)
    assert len(lists) == 114


def _page_all(client, path, params, limit):
    out, cursor = [], None
    while True:
        page = dict(params, limit=limit, **({"starting_after": cursor} if cursor else {}))
        body = client.get(path, page).json()
        assert body["object"] == "list" and body["url"] == path and len(body["data"]) <= limit
        out += body["data"]
        if not body["has_more"]:
            return out
        cursor = body["data"][-1]["id"]


def test_invoice_payments_created_filter_and_pagination():
    with Sandbox(seed=5, scale=0.05, now=SANDBOX_NOW, volumes={"invoice_payments": 57}) as sb:
        client = SandboxClient(sb)
        truth = sb.truth("invoice_payments")
        assert len(truth) == 57
        assert all(p["object"] == "invoice_payment" and p["id"].startswith("inpay_") for p in truth)
        got = _page_all(client, "/v1/invoice_payments", {}, 7)
        assert [p["id"] for p in got] == [p["id"] for p in truth]
        keys = [(p["created"], p["id"]) for p in got]
        assert keys == sorted(keys, reverse=True) and len(set(keys)) == 57
        mid = truth[20]["created"]
        for op, pred in (("gte", lambda c: c >= mid), ("lt", lambda c: c < mid)):
            filtered = _page_all(client, "/v1/invoice_payments", {f"created[{op}]": mid}, 5)
            assert [p["id"] for p in filtered] == [p["id"] for p in truth if pred(p["created"])], op
        # its invoice is a link to an invoice the sandbox serves
        invoices = {i["id"] for i in sb.truth("invoices")}
        assert any(p["invoice"] in invoices for p in truth if isinstance(p.get("invoice"), str))
        one = client.get(f"/v1/invoice_payments/{truth[3]['id']}").json()
        assert one == truth[3]


def test_billing_meters_have_no_created_filter_and_send_their_events(c, sb):
    r = c.get("/v1/billing/meters", {"created[gte]": SANDBOX_NOW})
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_unknown"
    meter = sb.create("billing_meters", {"display_name": "API calls", "event_name": "api_call"})
    assert meter["object"] == "billing.meter" and meter["id"].startswith("mtr_") and meter["created"] == sb.now
    assert isinstance(meter["status_transitions"], dict) and meter["status"] in ("active", "inactive")
    assert c.get("/v1/billing/meters", {"limit": 1}).json()["data"][0]["id"] == meter["id"]
    assert c.get(f"/v1/billing/meters/{meter['id']}").json() == meter
    sb.advance(60)
    sb.update("billing_meters", meter["id"], {"display_name": "API requests"})
    created, updated = reversed(c.get("/v1/events", {"limit": 2}).json()["data"])
    assert created["type"] == "billing.meter.created" and created["data"]["object"]["id"] == meter["id"]
    assert created["api_version"] == API_VERSION
    assert updated["type"] == "billing.meter.updated" and updated["created"] == sb.now
    assert updated["data"]["previous_attributes"] == {"display_name": "API calls"}
    assert updated["data"]["object"]["display_name"] == "API requests"


def test_an_object_the_version_sends_no_event_of(c, sb):
    before = c.get("/v1/events", {"limit": 1}).json()["data"][0]["id"]
    feature = sb.create("entitlements_features", {"name": "Seats", "lookup_key": "seats"})
    assert feature["object"] == "entitlements.feature"
    sb.update("entitlements_features", feature["id"], {"name": "Team seats"})
    assert c.get("/v1/events", {"limit": 1}).json()["data"][0]["id"] == before
    assert c.get(f"/v1/entitlements/features/{feature['id']}").json()["name"] == "Team seats"


def test_a_list_under_a_parent_named_by_a_query_parameter_with_created(c, sb):
    r = c.get("/v1/issuing/tokens")
    assert r.status_code == 400 and r.json()["error"]["param"] == "card"
    card = sb.truth("issuing_cards")[0]["id"]
    tokens = _page_all(c, "/v1/issuing/tokens", {"card": card}, 2)
    assert tokens and all(t["card"] == card and t["object"] == "issuing.token" for t in tokens)
    created = tokens[0]["created"]
    assert _page_all(c, "/v1/issuing/tokens", {"card": card, "created[gt]": created}, 5) == []
    assert len(_page_all(c, "/v1/issuing/tokens", {"card": card, "created[lte]": created}, 5)) == len(tokens)
    # entitlements of a customer, which Stripe lists by `customer`
    customer = sb.truth("customers")[0]["id"]
    assert c.get("/v1/entitlements/active_entitlements").status_code == 400
    active = c.get("/v1/entitlements/active_entitlements", {"customer": customer}).json()
    assert active["data"] and all(e["object"] == "entitlements.active_entitlement" for e in active["data"])


def test_the_versions_shapes(sb):
    invoices = sb.truth("invoices")
    assert all("subscription" not in i and "paid" not in i and "charge" not in i for i in invoices)
    assert any((i.get("parent") or {}).get("type") == "subscription_details" for i in invoices)
    item = sb.truth("subscription_items")[0]
    assert item["current_period_end"] > item["current_period_start"] >= item["created"]
    assert all("current_period_end" not in s for s in sb.truth("subscriptions"))
    line = sb.truth("invoice_line_items")[0]
    assert line["pricing"]["type"] == "price_details" and line["pricing"]["price_details"]["price"].startswith("price_")
    # a payment method carries the sub-object its type names, and no other
    for pm in sb.truth("payment_methods")[:20]:
        kinds = {k for k in ("card", "sepa_debit", "us_bank_account", "link") if isinstance(pm.get(k), dict)}
        assert kinds <= {pm["type"]}, (pm["type"], kinds)


def test_deleted_product_feature_is_returned_as_deleted(c, sb):
    product = sb.truth("products")[0]["id"]
    feature = c.get(f"/v1/products/{product}/features").json()["data"][0]
    assert feature["object"] == "product_feature"
    sb.delete("product_features", feature["id"])
    got = c.get(f"/v1/products/{product}/features/{feature['id']}").json()
    assert got == {"id": feature["id"], "object": "product_feature", "deleted": True}
    assert feature["id"] not in {f["id"] for f in c.get(f"/v1/products/{product}/features").json()["data"]}


def test_stripe_version_header(sb):
    headers = {"Authorization": "Bearer sk_test_sandbox"}
    r = requests.get(sb.url + "/v1/billing/meters", headers=headers)
    assert r.status_code == 200 and r.headers["Stripe-Version"] == API_VERSION
    r = requests.get(sb.url + "/v1/billing/meters", headers={**headers, "Stripe-Version": "2024-06-20"})
    assert r.status_code == 200 and r.headers["Stripe-Version"] == "2024-06-20"
    r = requests.get(sb.url + "/v1/billing/meters", headers={**headers, "Stripe-Version": "latest"})
    assert r.status_code == 400 and "Invalid Stripe API version" in r.json()["error"]["message"]
