"""HTTP behaviour: paging, limits, cursors, filters, params, auth, 404, expand, accounts, balance."""
import base64

import requests
from conftest import SandboxClient as Client  # noqa: F401

KEY = "sk_test_sandbox"


def test_paging_every_object_once_newest_first(client, session_sandbox):
    got = client.all("/v1/charges")
    ids = [o["id"] for o in got]
    assert len(ids) == 250 and len(set(ids)) == 250
    keys = [(o["created"], o["id"]) for o in got]
    assert keys == sorted(keys, reverse=True)
    assert ids == [o["id"] for o in session_sandbox.truth("charges")]


def test_list_shape_and_default_limit(client):
    body = client.get("/v1/charges").json()
    assert body["object"] == "list" and body["url"] == "/v1/charges" and body["has_more"] is True
    assert len(body["data"]) == 10


def test_limit_bounds(client):
    assert len(client.get("/v1/charges", {"limit": 100}).json()["data"]) == 100
    assert len(client.get("/v1/charges", {"limit": 1}).json()["data"]) == 1
    for bad in (0, 101, "x"):
        r = client.get("/v1/charges", {"limit": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_starting_after_and_ending_before(client):
    all_ids = [o["id"] for o in client.all("/v1/charges")]
    p = client.get("/v1/charges", {"limit": 5, "starting_after": all_ids[9]}).json()
    assert [o["id"] for o in p["data"]] == all_ids[10:15]
    p = client.get("/v1/charges", {"limit": 5, "ending_before": all_ids[9]}).json()
    assert [o["id"] for o in p["data"]] == all_ids[4:9] and p["has_more"] is True
    p = client.get("/v1/charges", {"limit": 5, "ending_before": all_ids[3]}).json()
    assert [o["id"] for o in p["data"]] == all_ids[0:3] and p["has_more"] is False
    r = client.get("/v1/charges", {"starting_after": all_ids[1], "ending_before": all_ids[0]})
    assert r.status_code == 400
    r = client.get("/v1/charges", {"starting_after": "ch_nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"


def test_created_filters(client):
    allc = client.all("/v1/charges")
    mid = allc[100]["created"]
    for op, pred in (("gt", lambda c: c > mid), ("gte", lambda c: c >= mid), ("lt", lambda c: c < mid),
                     ("lte", lambda c: c <= mid)):
        got = client.all("/v1/charges", {f"created[{op}]": mid})
        assert [o["id"] for o in got] == [o["id"] for o in allc if pred(o["created"])], op
    eq = client.all("/v1/charges", {"created": mid})
    assert eq and all(o["created"] == mid for o in eq)
    assert client.get("/v1/charges", {"created[gte]": "abc"}).status_code == 400


def test_subscription_status_default_and_all(client):
    default = client.all("/v1/subscriptions")
    everything = client.all("/v1/subscriptions", {"status": "all"})
    canceled = client.all("/v1/subscriptions", {"status": "canceled"})
    assert all(s["status"] != "canceled" for s in default)
    assert canceled and all(s["status"] == "canceled" for s in canceled)
    assert len(everything) == len(default) + len(canceled)


def test_required_and_unknown_params(client):
    r = client.get("/v1/subscription_items")
    assert r.status_code == 400 and r.json()["error"]["code"] == "parameter_missing"
    r = client.get("/v1/charges", {"bogus": 1})
    e = r.json()["error"]
    assert r.status_code == 400 and e["code"] == "parameter_unknown"
    assert e["message"] == "Received unknown parameter: bogus"


def test_auth(session_sandbox):
    r = requests.get(session_sandbox.url + "/v1/charges", headers={"Authorization": "Bearer sk_test_wrongkey9876"})
    e = r.json()["error"]
    assert r.status_code == 401 and e["type"] == "invalid_request_error"
    assert "9876" in e["message"] and "wrongkey" not in e["message"]
    assert requests.get(session_sandbox.url + "/v1/charges").status_code == 401
    basic = base64.b64encode(f"{KEY}:".encode()).decode()
    r = requests.get(session_sandbox.url + "/v1/charges", headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200


def test_404_and_retrieve(client):
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.headers["Request-Id"].startswith("req_")
    ch = client.get("/v1/charges", {"limit": 1}).json()["data"][0]
    assert client.get(f"/v1/charges/{ch['id']}").json() == ch
    r = client.get("/v1/charges/ch_000000000000000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "resource_missing"


def test_retrieve_every_top_level_stream(client, session_sandbox):
    top_level = [st.name for st in session_sandbox.store.streams.values() if not st.is_child and st.spec.kind == "list"]
    retrieved = []
    for st in session_sandbox.store.streams.values():
        if st.is_child or st.spec.kind != "list" or not session_sandbox.truth(st.name):
            continue
        obj = session_sandbox.truth(st.name)[0]
        path = (st.spec.retrieve_path or st.spec.path + "/{id}").replace("{id}", obj["id"])
        r = client.get(path)
        assert r.status_code == 200 and r.json()["id"] == obj["id"], st.name
        retrieved.append(st.name)
    # Every top-level list stream has data in the session sandbox, so each was retrieved.
    assert len(top_level) >= 50 and retrieved == top_level, sorted(set(top_level) - set(retrieved))


def test_links_hold(client, session_sandbox):
    cus = {o["id"] for o in session_sandbox.truth("customers")}
    charges = session_sandbox.truth("charges")
    linked = [c["customer"] for c in charges if c.get("customer")]
    assert linked and set(linked) <= cus
    subs = {s["id"]: s for s in session_sandbox.truth("subscriptions")}
    invoices_checked = 0
    for inv in session_sandbox.truth("invoices"):
        # since 2025-03-31 an invoice names its subscription under `parent`
        sub = ((inv.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        if sub:
            assert sub in subs
            assert inv["customer"] == subs[sub]["customer"]
            invoices_checked += 1
    assert invoices_checked >= 10, "too few invoices of a subscription to check the link"
    chs = {c["id"] for c in charges}
    refund_charges = [r["charge"] for r in session_sandbox.truth("refunds") if r.get("charge")]
    assert len(refund_charges) >= 10, "too few refunds of a charge to check the link"
    assert all(r["charge"] in chs for r in session_sandbox.truth("refunds") if r.get("charge"))


def test_embedded_children_match_child_lists(client, session_sandbox):
    invs = client.all("/v1/invoices")
    big = [i for i in invs if i["lines"]["has_more"]]
    assert big, "expected some invoices with more than 10 lines"
    for inv in invs[:5] + big[:2]:
        lines = client.all(f"/v1/invoices/{inv['id']}/lines")
        assert [item["id"] for item in lines[:10]] == [item["id"] for item in inv["lines"]["data"]]
        assert inv["lines"]["has_more"] == (len(lines) > 10)
    sub = client.get("/v1/subscriptions", {"limit": 1, "status": "all"}).json()["data"][0]
    items = client.all("/v1/subscription_items", {"subscription": sub["id"]})
    assert [i["id"] for i in items] == [i["id"] for i in sub["items"]["data"]]
    assert all(i["subscription"] == sub["id"] for i in items)


def test_includable_child_lists_only_when_expanded(client, session_sandbox):
    """A customer's `tax_ids` and `sources` (includable since 2020-08-27) are absent unless the
    request expands them; expanded, each is its first page in Stripe's shape: 10 items in the
    child endpoint's order, `has_more` exactly when there are more, the endpoint's `url`, and no
    `total_count` (Stripe's spec has none for these lists)."""
    plain = client.all("/v1/customers")
    assert plain and not any("tax_ids" in c or "sources" in c for c in plain)
    expanded = client.all("/v1/customers", [("expand[]", "data.tax_ids"), ("expand[]", "data.sources")])
    assert [c["id"] for c in expanded] == [c["id"] for c in plain]
    assert any(c["tax_ids"]["has_more"] for c in expanded), "expected a customer with more than 10 tax ids"
    for customer in expanded:
        for field in ("tax_ids", "sources"):
            listing, url = customer[field], f"/v1/customers/{customer['id']}/{field}"
            assert set(listing) == {"object", "data", "has_more", "url"} and listing["object"] == "list"
            assert listing["url"] == url
            full = client.all(url)
            assert listing["data"] == full[:10] and listing["has_more"] == (len(full) > 10)
    one = client.get(f"/v1/customers/{plain[0]['id']}", {"expand[]": "tax_ids"}).json()
    assert one["tax_ids"] == expanded[0]["tax_ids"]
    assert "tax_ids" not in client.get(f"/v1/customers/{plain[0]['id']}").json()
    # on a list, the expansion starts with `data.`, as any other
    assert client.get("/v1/customers", {"expand[]": "tax_ids"}).status_code == 400


def test_expand(client, session_sandbox):
    body = client.get("/v1/charges", {"limit": 20, "expand[]": "data.customer"}).json()
    exp = [c for c in body["data"] if isinstance(c["customer"], dict)]
    assert exp and all(c["customer"]["object"] == "customer" for c in exp)
    ch = exp[0]
    one = client.get(f"/v1/charges/{ch['id']}", {"expand[]": "customer"}).json()
    assert one["customer"]["id"] == ch["customer"]["id"]
    assert client.get("/v1/charges", {"expand[]": "customer"}).status_code == 400


def test_stripe_version_recorded(client, session_sandbox):
    client.get("/v1/customers", {"limit": 1}, **{"Stripe-Version": "2099-01-01"})
    assert session_sandbox.stats()["stripe_versions"].get("2099-01-01", 0) >= 1
    assert any(r["stripe_version"] == "2099-01-01" for r in session_sandbox.requests)


def test_stripe_account_separation(client, session_sandbox):
    accts = [a["id"] for a in client.all("/v1/accounts")]
    # Lists are newest first, and the sandbox creates connected account n+1 after account n:
    # the list is account_ids() reversed.
    assert accts == list(reversed(session_sandbox.account_ids()))
    plat = {o["id"] for o in client.all("/v1/customers")}
    a1 = {o["id"] for o in client.all("/v1/customers", **{"Stripe-Account": accts[0]})}
    a2 = {o["id"] for o in client.all("/v1/customers", **{"Stripe-Account": accts[1]})}
    assert a1 and not (plat & a1) and not (a1 & a2)
    oid = next(iter(a1))
    assert client.get(f"/v1/customers/{oid}").status_code == 404
    assert client.get(f"/v1/customers/{oid}", **{"Stripe-Account": accts[0]}).status_code == 200
    r = client.get("/v1/customers", **{"Stripe-Account": "acct_1NotConnectedXXXXXXXXXXX"})
    assert r.status_code == 403


def test_the_account_a_request_acts_for(client, session_sandbox):
    # GET /v1/account: the key's own account, or the connected account Stripe-Account names.
    own = client.get("/v1/account").json()
    assert own["object"] == "account" and own["id"].startswith("acct_")
    assert own["id"] not in session_sandbox.account_ids()
    connected = session_sandbox.account_ids()[1]
    assert client.get("/v1/account", **{"Stripe-Account": connected}).json()["id"] == connected


def test_balance(client):
    b = client.get("/v1/balance").json()
    assert b["object"] == "balance" and b["available"][0]["currency"]


def test_unpaginated_list_returns_everything(session_sandbox, client):
    st = session_sandbox.store.streams.get("report_types")
    assert st is not None and not st.spec.paginated, "report_types is the sandbox's unpaginated list"
    assert len(session_sandbox.truth("report_types")) > 10
    body = client.get("/v1/reporting/report_types").json()
    assert len(body["data"]) == len(session_sandbox.truth("report_types")) and body["has_more"] is False
    assert client.get("/v1/reporting/report_types", {"limit": 5}).status_code == 400
