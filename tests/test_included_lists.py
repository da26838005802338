"""Child lists Stripe embeds in a parent only when the parent's list expands them (a customer's
`tax_ids`): the parent's list asks for them while the child is read, a parent whose list fits in
the first page costs no request of its own, a longer one is paged on from its last embedded item,
and every record is what the child endpoint gives, the parent's as without the embedding."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from conftest import SANDBOX_NOW, SandboxClient, TargetModel, catalog_for, comparable, tap_config

from stripe_sandbox import Sandbox
from tap_stripe.output.records import RecordShaper, rfc3339
from tap_stripe.streams import SPECS
from tap_stripe.tap import load_schema

STREAMS = ["customers", "customer_tax_ids"]


@pytest.fixture
def account():
    """40 customers with the sandbox's few tax ids each, three of them given more than 10."""
    with Sandbox(seed=5, volumes={"customers": 40}, now=SANDBOX_NOW, history_days=200) as sb:
        client = SandboxClient(sb)
        customers = sb.truth("customers")
        counts = {c["id"]: len(client.all(f"/v1/customers/{c['id']}/tax_ids")) for c in customers}
        for customer, wanted in zip([c["id"] for c in customers if counts[c["id"]] <= 10][:3], (11, 17, 112)):
            for i in range(wanted - counts[customer]):
                sb.create("customer_tax_ids", {"type": "eu_vat", "value": f"DE{100000000 + i}"}, parent=customer,
                          at=SANDBOX_NOW - 3600)
        sb.set_clock(SANDBOX_NOW)
        yield sb, client


def tax_ids_requests(sb) -> dict[str, list[dict]]:
    """The requests of each customer's tax ids endpoint, by customer."""
    found: dict[str, list[dict]] = {}
    for request in sb.requests:
        parts = request["path"].strip("/").split("/")
        if parts[:2] == ["v1", "customers"] and parts[3:] == ["tax_ids"]:
            found.setdefault(parts[2], []).append(dict(parse_qsl(request["query"])))
    return found


def from_endpoints(client, customers: list[dict]) -> dict[str, dict]:
    """Each customer's tax ids as the child endpoint lists them, shaped as the tap shapes a child
    of a parent read by its list (`_updated_at`: the customer's `created`)."""
    shaper = RecordShaper(load_schema("customer_tax_ids"), SPECS["customer_tax_ids"].created_field)
    rows = {}
    for customer in customers:
        for obj in client.all(f"/v1/customers/{customer['id']}/tax_ids"):
            rows[obj["id"]] = shaper.shape(obj, None, customer["created"])
    return rows


def test_first_load_takes_tax_ids_from_the_customers_list_and_pages_on_only_past_ten(account, run_tap):
    sb, client = account
    customers = sb.truth("customers")
    expected = from_endpoints(client, customers)
    counts = {c["id"]: sum(1 for r in expected.values() if r["customer"] == c["id"]) for c in customers}
    long = {cid for cid, n in counts.items() if n > 10}
    assert len(long) >= 3 and len(long) < len(customers) // 2
    sb.reset_stats()

    run = run_tap(tap_config(sb), catalog=catalog_for(STREAMS))

    assert run.returncode == 0, run.stderr[-3000:]
    expands = [[v for k, v in parse_qsl(r["query"]) if k == "expand[]"]
               for r in sb.requests if r["path"] == "/v1/customers"]
    assert expands and all("data.tax_ids" in expand for expand in expands)
    requests = tax_ids_requests(sb)
    # None for a customer whose tax ids fit in the embedded page; from its 10th on for the others.
    assert set(requests) == long
    for cid in long:
        assert requests[cid][0]["starting_after"] == client.all(f"/v1/customers/{cid}/tax_ids")[9]["id"]
        assert len(requests[cid]) == -(-(counts[cid] - 10) // 100)
    # Exactly the records the child endpoint gives (a customer with 112: 10 embedded, 100, 2).
    got = {r["id"]: r for r in run.records("customer_tax_ids")}
    assert len(got) == len(run.records("customer_tax_ids")) == len(expected)
    assert {k: comparable(r) for k, r in got.items()} == {k: comparable(r) for k, r in expected.items()}
    created = {c["id"]: rfc3339(c["created"]) for c in customers}
    assert all(r["_updated_at"] == created[r["customer"]] for r in got.values())
    # The customers' records are as without the embedding: no `tax_ids` (never expanded before).
    model = TargetModel().apply(run.messages)
    assert set(model.rows("customers")) == {c["id"] for c in customers}
    assert not any("tax_ids" in r for r in run.records("customers"))


def test_a_changed_customer_s_tax_ids_are_read_from_their_endpoint(account, run_tap):
    """A customer read again from its event (whose object carries no includable list) has its
    tax ids read from their endpoint, as before."""
    sb, client = account
    config = tap_config(sb)
    first = run_tap(config, catalog=catalog_for(STREAMS))
    assert first.returncode == 0, first.stderr[-3000:]
    customer = next(c for c in sb.truth("customers")
                    if len(client.all(f"/v1/customers/{c['id']}/tax_ids")) <= 10)["id"]
    sb.advance(60)
    sb.update("customers", customer, {"metadata": {"note": "changed"}})
    added = sb.create("customer_tax_ids", {"type": "eu_vat", "value": "DE999999999"}, parent=customer)
    sb.advance(60)
    sb.reset_stats()

    run = run_tap(config, catalog=catalog_for(STREAMS), state=first.last_state)

    assert run.returncode == 0, run.stderr[-3000:]
    assert customer in tax_ids_requests(sb)
    assert any(r["id"] == added["id"] for r in run.records("customer_tax_ids"))
    changed = [r for r in run.records("customers") if r["id"] == customer]
    assert changed and changed[-1]["metadata"] == {"note": "changed"} and "tax_ids" not in changed[-1]


@pytest.mark.parametrize("refusal", ["403", "unexpandable"])
def test_a_refused_embedding_reads_the_child_endpoints_instead(account, run_tap, refusal):
    """A list call that asks for the embedded lists and is refused — a key that may read customers
    and not their tax ids (403), or a 400 saying the field cannot be expanded there — is made
    again without them; the feed asks no more, and the tax ids are read from their endpoints."""
    sb, client = account
    customers = sb.truth("customers")
    expected = from_endpoints(client, customers)
    sb.reset_stats()
    sb.add_fault("/v1/customers", refusal, count=1)

    run = run_tap(tap_config(sb, max_workers=1), catalog=catalog_for(STREAMS))

    assert run.returncode == 0, run.stderr[-3000:]
    assert "embeds child lists (expand[]=data.tax_ids) was refused" in run.stderr
    assert "Skipping stream" not in run.stderr
    assert {r["id"] for r in run.records("customers")} == {c["id"] for c in customers}
    assert {r["id"]: comparable(r) for r in run.records("customer_tax_ids")} == \
        {k: comparable(r) for k, r in expected.items()}
    assert len(tax_ids_requests(sb)) == len(customers)  # every customer's, from its endpoint


# --------------------------------------------------------------------------- which lists a parent asks for
def family(*children, expand=None):
    """The customers' family with `children` (names; "-name" for a skipped one) and the
    `Children` of a run with the `expand` setting."""
    from tap_stripe.engine.children import Children
    from tap_stripe.engine.feeds import Feed, Member

    members = [Member(SPECS[name.lstrip("-")], True, skipped="denied" if name.startswith("-") else None)
               for name in children]
    feed = Feed(Member(SPECS["customers"], True, children=members), None, SANDBOX_NOW)
    return Children(None, {}, expand or {}, None), feed


def added(children, feed) -> list[str]:
    params, fields = children.parent_query(feed.root, feed)
    assert params == SPECS["customers"].list_query(children.expand) + [("expand[]", f) for f in fields]
    return fields


def test_a_parent_asks_for_the_includable_lists_of_the_children_it_reads():
    assert added(*family("customer_tax_ids", "customer_sources", "customer_balance_transactions")) == \
        ["data.tax_ids", "data.sources"]
    assert added(*family("customer_balance_transactions")) == []  # no child that is embedded
    assert added(*family()) == []  # the parent alone: its pages no heavier
    assert added(*family("-customer_tax_ids", "customer_sources")) == ["data.sources"]  # skipped: not read
    # a child with expansions is read from its endpoint (an embedded list is never expanded)
    assert added(*family("customer_tax_ids", expand={"customer_tax_ids": ["customer"]})) == []
    # the parent's own expansions ask for it already (a class's `default_expand`): its records keep it
    children, feed = family("customer_tax_ids", expand={"customers": ["tax_ids"]})
    assert added(children, feed) == [] and children.includable(feed.root) == ()
    children, feed = family("customer_tax_ids")
    feed.include_refused = True
    assert added(children, feed) == []


def test_an_includable_list_is_kept_for_the_children_and_out_of_the_parent_s_record():
    children, feed = family("customer_tax_ids", "customer_balance_transactions")
    fields = children.includable(feed.root)
    assert fields == ("tax_ids",)
    tax_ids = {"object": "list", "data": [{"id": "txi_1"}], "has_more": False}
    obj = {"id": "cus_1", "email": "a@example.com", "tax_ids": tax_ids}
    own, for_children = children.included(fields, obj)
    assert own is obj and own == {"id": "cus_1", "email": "a@example.com"}
    assert for_children == {"id": "cus_1", "email": "a@example.com", "tax_ids": tax_ids}
    plain = {"id": "cus_2"}
    assert children.included(fields, plain) == (plain, plain)
    assert children.included(fields, plain)[1] is plain  # nothing copied when nothing was embedded
