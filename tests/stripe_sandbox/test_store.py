"""Store: determinism, mutations, events, clock."""
import requests
from conftest import SandboxClient as Client  # noqa: F401

from stripe_sandbox import Sandbox, Store

NOW = 1767225600


def test_determinism_from_seed():
    a = Store(seed=5, scale=0.05, now=NOW).truth("charges")
    b = Store(seed=5, scale=0.05, now=NOW).truth("charges")
    c = Store(seed=6, scale=0.05, now=NOW).truth("charges")
    assert a == b and a != c


def test_large_volume_is_lazy():
    """A million objects: the newest 100 come from ~a binary search and 100 steps, not a scan
    (counted in calls of `created`, not in seconds)."""
    s = Store(seed=1, now=NOW, volumes={"charges": 1_000_000})
    st = s.streams["charges"]
    calls = 0
    created = s.created

    def counted(*args):
        nonlocal calls
        calls += 1
        return created(*args)

    s.created = counted
    it = s.iter_desc(0, st, s.visible_lo(st), s.visible_hi(st))
    first = [next(it)[1] for _ in range(100)]
    assert first[0] == 999_999 and first == list(range(999_999, 999_899, -1))
    assert calls < 200, calls  # 2 binary searches of ~20 steps, then one call per object


def test_mutations_reflected_in_lists_retrieve_events(c, sb):
    cus = sb.create("customers", {"email": "new@example.com", "metadata": {"k": "v"}})
    assert cus["id"].startswith("cus_") and cus["created"] == sb.now
    assert c.get("/v1/customers", {"limit": 1}).json()["data"][0]["id"] == cus["id"]
    assert c.get(f"/v1/customers/{cus['id']}").json()["email"] == "new@example.com"
    sb.advance(60)
    sb.update("customers", cus["id"], {"email": "changed@example.com"})
    assert c.get(f"/v1/customers/{cus['id']}").json()["email"] == "changed@example.com"
    sb.advance(60)
    sb.delete("customers", cus["id"])
    r = c.get(f"/v1/customers/{cus['id']}").json()
    assert r == {"id": cus["id"], "object": "customer", "deleted": True}
    assert cus["id"] not in {o["id"] for o in c.all("/v1/customers")}
    evs = c.get("/v1/events", {"limit": 3}).json()["data"]
    assert [e["type"] for e in evs] == ["customer.deleted", "customer.updated", "customer.created"]
    upd = evs[1]
    assert upd["data"]["previous_attributes"] == {"email": "new@example.com"}
    assert upd["data"]["object"]["email"] == "changed@example.com"
    for e in evs:
        assert e["id"].startswith("evt_") and e["object"] == "event" and e["livemode"] is False
        assert e["pending_webhooks"] == 0 and set(e["request"]) == {"id", "idempotency_key"} and e["api_version"]


def test_generated_object_update_and_subscription_event(c, sb):
    sub = sb.truth("subscriptions")[0]
    sb.update("subscriptions", sub["id"], {"metadata": {"x": "1"}})
    e = c.get("/v1/events", {"limit": 1}).json()["data"][0]
    assert e["type"] == "customer.subscription.updated" and e["data"]["object"]["id"] == sub["id"]
    assert c.get(f"/v1/subscriptions/{sub['id']}").json()["metadata"] == {"x": "1"}


def test_child_change_emits_parent_updated(c, sb):
    inv = sb.truth("invoices")[0]
    line = inv["lines"]["data"][0]
    sb.update("invoice_line_items", line["id"], {"description": "patched"})
    e = c.get("/v1/events", {"limit": 1}).json()["data"][0]
    assert e["type"] == "invoice.updated" and e["data"]["object"]["id"] == inv["id"]
    assert e["data"]["object"]["lines"]["data"][0]["description"] == "patched"
    lines = c.all(f"/v1/invoices/{inv['id']}/lines")
    assert lines[0]["description"] == "patched"
    assert c.get(f"/v1/invoices/{inv['id']}").json()["lines"]["data"][0]["description"] == "patched"


def test_events_types_filter(c, sb):
    allev = c.all("/v1/events")
    t = allev[0]["type"]
    only = c.all("/v1/events", {"type": t})
    assert only and all(e["type"] == t for e in only)
    assert len(only) == sum(e["type"] == t for e in allev)
    two = {allev[0]["type"], allev[-1]["type"]}
    got = c.all("/v1/events", [("types[]", x) for x in two])
    assert {e["type"] for e in got} <= two and len(got) == sum(e["type"] in two for e in allev)
    r = c.get("/v1/events", [("types[]", f"x.{i}") for i in range(21)])
    assert r.status_code == 400


def test_events_30_day_cutoff_and_clock(c, sb):
    cus = sb.create("customers", {})
    e = c.get("/v1/events", {"limit": 1}).json()["data"][0]
    assert e["type"] == "customer.created"
    evs = c.all("/v1/events")
    assert all(x["created"] >= sb.now - 30 * 86400 for x in evs)
    sb.advance(31 * 86400)
    assert c.get(f"/v1/events/{e['id']}").status_code == 404
    assert e["id"] not in {x["id"] for x in c.all("/v1/events")}
    assert c.get(f"/v1/customers/{cus['id']}").status_code == 200


def test_future_objects_appear_when_clock_advances():
    with Sandbox(seed=2, scale=0.05, now=NOW, history_days=30, future_days=10, volumes={"charges": 400}) as sb:
        before = len(sb.truth("charges"))
        sb.advance(5 * 86400)
        after = sb.truth("charges")
        assert 0 < before < len(after) < 400
        assert max(o["created"] for o in after) <= sb.now
        sb.set_clock(NOW + 11 * 86400)
        assert len(sb.truth("charges")) == 400


def test_created_in_past_via_control(c, sb):
    old = sb.create("charges", {"amount": 4242}, at=sb.now - 86400 * 200)
    ids = [o["id"] for o in c.all("/v1/charges")]
    assert old["id"] in ids
    objs = c.all("/v1/charges")
    keys = [(o["created"], o["id"]) for o in objs]
    assert keys == sorted(keys, reverse=True)
    bound = sb.now - 86400 * 200
    filtered = [o["id"] for o in c.all("/v1/charges", {"created[lte]": bound})]
    assert old["id"] in filtered
    assert filtered == [o["id"] for o in sb.truth("charges") if o["created"] <= bound], "created[lte] filters by time"
    assert len(filtered) < len(objs), "the filter must leave newer charges out"


def test_http_control_api(sb):
    r = requests.post(sb.url + "/_sandbox/create", json={"stream": "customers", "fields": {"name": "Via HTTP"}})
    cid = r.json()["id"]
    assert r.status_code == 200 and sb.truth("customers")[0]["id"] == cid
    assert requests.post(sb.url + "/_sandbox/clock", json={"advance": 10}).json()["now"] == NOW + 10
    s = requests.get(sb.url + "/_sandbox/stats").json()
    assert "by_path" in s


def test_delete_without_deleted_variant_is_404_and_subscription_cancel(c, sb):
    ch = sb.truth("charges")[0]
    sb.delete("charges", ch["id"])
    assert c.get(f"/v1/charges/{ch['id']}").status_code == 404
    sub = c.get("/v1/subscriptions", {"status": "all", "limit": 1}).json()["data"][0]
    sb.delete("subscriptions", sub["id"])
    got = c.get(f"/v1/subscriptions/{sub['id']}").json()
    assert got["status"] == "canceled"
    assert c.get("/v1/events", {"limit": 1}).json()["data"][0]["type"] == "customer.subscription.deleted"
    assert sub["id"] not in {s["id"] for s in c.all("/v1/subscriptions")}


def test_create_child_updates_parent(c, sb):
    inv = sb.truth("invoices")[0]
    n = len(c.all(f"/v1/invoices/{inv['id']}/lines"))
    line = sb.create("invoice_line_items", {"description": "added"}, parent=inv["id"])
    lines = c.all(f"/v1/invoices/{inv['id']}/lines")
    assert len(lines) == n + 1 and lines[-1]["id"] == line["id"]
    e = c.get("/v1/events", {"limit": 1}).json()["data"][0]
    assert e["type"] == "invoice.updated" and e["data"]["object"]["id"] == inv["id"]


def test_expanded_tax_ids_follow_changes(c, sb):
    """An expanded includable list is the child list as it is now: a customer with 11 tax ids
    has `has_more`, its first 10 as the endpoint lists them; a deleted one is gone from it."""
    customer = sb.truth("customers")[-1]["id"]
    url = f"/v1/customers/{customer}/tax_ids"
    for i in range(11 - len(c.all(url))):
        sb.create("customer_tax_ids", {"type": "eu_vat", "value": f"DE{100000000 + i}"}, parent=customer)

    def expanded():
        body = c.get("/v1/customers", [("limit", 100), ("expand[]", "data.tax_ids")]).json()
        return next(o for o in body["data"] if o["id"] == customer)["tax_ids"]

    full = c.all(url)
    assert len(full) == 11
    listing = expanded()
    assert listing["has_more"] is True and listing["data"] == full[:10]
    sb.delete("customer_tax_ids", full[0]["id"])
    listing = expanded()
    assert listing["has_more"] is False and listing["data"] == c.all(url) == full[1:]
    # the customer's events carry no includable list
    assert all("tax_ids" not in e["data"]["object"] for e in c.all("/v1/events")
               if e["data"]["object"].get("object") == "customer")


def test_configured_restricted_key():
    with Sandbox(seed=1, scale=0.02, now=NOW, keys=("rk_test_abc123",)) as sb:
        ok = requests.get(sb.url + "/v1/customers", headers={"Authorization": "Bearer rk_test_abc123"})
        bad = requests.get(sb.url + "/v1/customers", headers={"Authorization": "Bearer sk_test_sandbox"})
        assert ok.status_code == 200 and bad.status_code == 401
