"""What a stream class says of itself is what the engine does: its `post_process` is called on
each of its records (list windows, full-table pages, children, events, singletons), its
declarations (`list_params`, `key_properties`, `kind`) are read, and the SDK's names the engine
would not honour are refused when the class is defined."""

from __future__ import annotations

import json

import pytest
from conftest import catalog_for, parse_messages, tap_config

from tap_stripe.spec import StreamKind
from tap_stripe.streams import STREAM_CLASSES, generated, overrides
from tap_stripe.streams.base import REFUSED, SingletonStream, overrides_post_process
from tap_stripe.tap import TapStripe

DAY = 86400
STREAMS = ["charges", "payment_links", "products", "subscriptions", "subscription_items", "balance"]


class ChargesStream(generated.ChargesStream):
    """Charges whose id is in `dropped` are left out; the others say they were reviewed."""

    dropped: set[str] = set()

    def post_process(self, row: dict, context: dict | None = None) -> dict | None:
        if row["id"] in self.dropped:
            return None
        return {**row, "reviewed": True}


def _reviewed(base: type) -> type:
    """A subclass of `base` whose post_process marks each record."""

    def post_process(self, row: dict, context: dict | None = None) -> dict | None:
        return {**row, "reviewed": True}

    return type(base.__name__, (base,), {"post_process": post_process, "__module__": __name__})


@pytest.fixture
def customised(monkeypatch):
    """The classes registered as a class of `overrides.py` named like a generated one is: the
    table's class in `tap_stripe.streams.STREAM_CLASSES`."""
    monkeypatch.setitem(STREAM_CLASSES, "charges", ChargesStream)
    for name, base in (("payment_links", generated.PaymentLinksStream), ("products", generated.ProductsStream),
                       ("subscription_items", generated.SubscriptionItemsStream),
                       ("balance", generated.BalanceStream)):
        monkeypatch.setitem(STREAM_CLASSES, name, _reviewed(base))
    monkeypatch.setattr("tap_stripe.process.collector_for_run", lambda: None)  # the test process's collector


def sync(capsys, config: dict, state: dict | None = None) -> list[dict]:
    """One run of the tap in this process, with the classes registered now; its messages."""
    capsys.readouterr()
    tap = TapStripe(config=config, catalog=catalog_for(STREAMS), state=state)
    tap.sync()
    return parse_messages(capsys.readouterr().out)


def records(messages: list[dict], stream: str) -> list[dict]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


def test_post_process_changes_every_kind_of_read(sandbox, capsys, customised):
    charges = sorted(c["id"] for c in sandbox.truth("charges"))
    ChargesStream.dropped = set(charges[::2])
    config = tap_config(sandbox)
    first = sync(capsys, config)
    got = records(first, "charges")
    assert sorted(r["id"] for r in got) == charges[1::2]  # list windows
    assert got and all(r["reviewed"] is True for r in got)
    for stream in ("payment_links", "subscription_items", "balance"):  # pages, children, a singleton
        assert records(first, stream) and all(r["reviewed"] is True for r in records(first, stream)), stream
    assert all("reviewed" not in r for r in records(first, "subscriptions"))  # no hook: as before

    sandbox.advance(DAY)
    kept, dropped = charges[1], charges[0]
    for charge in (kept, dropped):
        sandbox.update("charges", charge, {"description": "updated"})
    product = sandbox.truth("products")[0]["id"]
    sandbox.delete("products", product)
    sandbox.update("subscriptions", sandbox.truth("subscriptions")[0]["id"], {"metadata": {"plan": "upgraded"}})
    sandbox.advance(60)
    state = [m["value"] for m in first if m["type"] == "STATE"][-1]
    second = sync(capsys, config, state)
    updated = [r for r in records(second, "charges") if r.get("description") == "updated"]
    assert [(r["id"], r["reviewed"]) for r in updated] == [(kept, True)]  # events
    items = records(second, "subscription_items")
    assert items and all(r["reviewed"] is True for r in items)  # children read again for a changed parent
    deletions = [r for r in records(second, "products") if r.get("deleted") is True]
    assert [d["id"] for d in deletions] == [product] and "reviewed" not in deletions[0]  # never passed through


def test_only_a_class_with_its_own_post_process_has_one():
    assert overrides_post_process(ChargesStream) and overrides_post_process(_reviewed(generated.BalanceStream))
    assert not any(overrides_post_process(cls) for cls in STREAM_CLASSES.values())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_the_sdks_names_the_engine_does_not_use_are_refused(name):
    value = (lambda self, *args: None) if name.startswith(("get_", "parse_", "request_")) else ["id"]
    with pytest.raises(TypeError) as info:
        type("ChargesStream", (generated.ChargesStream,), {name: value, "__module__": __name__})
    assert f"defines `{name}`" in str(info.value) and REFUSED[name] in str(info.value)


def test_refusals_name_what_to_use_instead():
    assert "list_params" in REFUSED["get_url_params"] and "post_process" in REFUSED["parse_response"]
    assert "key_properties" in REFUSED["primary_keys"] and "key_properties" in REFUSED["replication_key"]


def test_declarations_are_read_into_the_spec():
    class SubscriptionsStream(overrides.SubscriptionsStream):
        list_params = {"status": "all", "collection_method": "send_invoice"}
        key_properties = ["id", "customer"]

    spec = SubscriptionsStream.spec
    assert spec.list_params == (("status", "all"), ("collection_method", "send_invoice"))
    assert spec.list_query({})[:2] == [("status", "all"), ("collection_method", "send_invoice")]
    assert spec.key_properties == ("id", "customer")
    with pytest.raises(TypeError, match="list_params must be"):
        type("ChargesStream", (generated.ChargesStream,), {"list_params": ("status",), "__module__": __name__})


def test_kinds_are_an_enumeration_that_reads_as_its_value():
    class Widget(SingletonStream):
        name = "widget"
        path = "/v1/widget"
        kind = "singleton"  # a string is taken

    assert Widget.spec.kind is StreamKind.SINGLETON
    assert STREAM_CLASSES["charges"].spec.kind is StreamKind.LIST
    assert STREAM_CLASSES["report_payouts_summary"].spec.kind is StreamKind.REPORT
    assert json.dumps({"kind": StreamKind.LIST}) == '{"kind": "list"}' and f"{StreamKind.REPORT}" == "report"
    assert StreamKind.SINGLETON == "singleton"
