"""The `custom_streams` setting: any list endpoint as a stream, discovered and synced like the others."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SANDBOX_KEY, catalog_for, comparable, expected_rows, tap_config

from tap_stripe.errors import ConfigError
from tap_stripe.streams import SPECS
from tap_stripe.streams.configured import custom_streams

WIDGETS = {"name": "billing_widgets", "path": "/v1/billing/widgets", "key": "id", "created": True}


def serve_widgets(sb) -> None:
    """Test-only: the sandbox answers /v1/billing/widgets (a list the tap's catalog does not
    have) with its charges, as Stripe would a list the tap does not know."""
    sb.app.exact["/v1/billing/widgets"] = ("list", sb.store.streams["charges"], "/v1/billing/widgets")


def widget_requests(sb) -> list[dict]:
    return [dict(part.split("=", 1) for part in r["query"].split("&")) for r in sb.requests
            if r["path"] == "/v1/billing/widgets"]


def test_a_custom_list_syncs_incrementally_with_an_inferred_schema(sandbox, run_tap):
    serve_widgets(sandbox)
    coupons = {"name": "coupon_list", "path": "/v1/coupons"}  # no `created`: a full table
    config = tap_config(sandbox, custom_streams=[WIDGETS, coupons], lookback_seconds=0)
    catalog = catalog_for(["billing_widgets", "coupon_list"], config)
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    truth = {c["id"] for c in sandbox.truth("charges")}
    records = first.records("billing_widgets")
    assert {r["id"] for r in records} == truth and len(records) == len(truth)
    assert all(isinstance(r["amount"], int) and r["created"].endswith("Z") for r in records)
    schemas = [m for m in first.messages if m["type"] == "SCHEMA" and m["stream"] == "billing_widgets"]
    assert set(schemas[0]["schema"]["properties"]) >= {"id", "object", "created"} and \
        "amount" not in schemas[0]["schema"]["properties"]
    assert schemas[0]["bookmark_properties"] == ["created"]
    assert schemas[-1]["schema"]["properties"]["amount"] == {"type": ["integer", "null"]}
    first_record = next(i for i, m in enumerate(first.messages) if m.get("stream") == "billing_widgets"
                        and m["type"] == "RECORD")
    assert first.messages.index(schemas[-1]) < first_record
    assert all("created%5Bgte%5D" in q and "created%5Blt%5D" in q for q in widget_requests(sandbox))
    bookmark = first.last_state["bookmarks"]["billing_widgets"]["accounts"]["default"]["created"]
    assert bookmark == sandbox.now
    assert {r["id"] for r in first.records("coupon_list")} == {c["id"] for c in sandbox.truth("coupons")}
    assert any(m["type"] == "ACTIVATE_VERSION" and m["stream"] == "coupon_list" for m in first.messages)

    # Next run, from the state: only the objects created since (evolution of an inferred
    # schema stays on with `schema_evolution: false`).
    sandbox.advance(600)
    new = [sandbox.create("charges")["id"] for _ in range(3)]
    sandbox.advance(60)
    sandbox.reset_stats()
    second = run_tap({**config, "schema_evolution": False}, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr
    records = second.records("billing_widgets")
    assert sorted(r["id"] for r in records) == sorted(new)
    assert all(isinstance(r["amount"], int) for r in records)
    lows = {int(q["created%5Bgte%5D"]) for q in widget_requests(sandbox)}
    assert min(lows) == bookmark, "the second run starts at the first one's bookmark"
    assert second.last_state["bookmarks"]["billing_widgets"]["accounts"]["default"]["created"] == sandbox.now


def test_a_custom_stream_of_a_known_object_has_its_schema_and_follows_its_events(sandbox, run_tap):
    entry = {"name": "charges_again", "path": "/v1/charges", "created": True, "object": "charge",
             "event_types": ["charge.updated", "charge.succeeded"]}
    config = tap_config(sandbox, custom_streams=[entry], lookback_seconds=0)
    catalog = catalog_for(["charges_again"], config)
    charges_entry = next(e for e in catalog_for([])["streams"] if e["tap_stream_id"] == "charges")
    ours = next(e for e in catalog["streams"] if e["tap_stream_id"] == "charges_again")
    assert ours["schema"] == charges_entry["schema"]
    sensitive = {tuple(m["breadcrumb"]): m["metadata"].get("stripe-sensitive") for m in ours["metadata"]}
    assert sensitive[("properties", "receipt_email")] == "contact"
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    expected = expected_rows(sandbox, "charges")
    got = {r["id"]: r for r in first.records("charges_again")}
    assert set(got) == set(expected)
    assert all(comparable(got[k]) == comparable(v) for k, v in expected.items())
    charge = sorted(expected)[0]
    sandbox.advance(600)
    sandbox.update("charges", charge, {"description": "changed later"})
    sandbox.advance(60)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr
    assert [r["description"] for r in second.records("charges_again") if r["id"] == charge] == ["changed later"]
    assert second.last_state["bookmarks"]["charges_again"]["accounts"]["default"]["events"] == sandbox.now


def discover(tmp_path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "discover-config.json"
    path.write_text(json.dumps(config))
    return subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(path), "--discover"],
                          capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.e2e  # runs the tap as a process
def test_discovery_lists_custom_streams_without_a_request(tmp_path):
    config = {"api_key": SANDBOX_KEY, "api_url": "http://127.0.0.1:9",
              "custom_streams": [WIDGETS, {"name": "coupon_list", "path": "/v1/coupons", "key": ["id"]}]}
    run = discover(tmp_path, config)
    assert run.returncode == 0, run.stderr
    entries = {e["tap_stream_id"]: e for e in json.loads(run.stdout)["streams"]}
    widgets = entries["billing_widgets"]
    assert widgets["replication_key"] == "created" and widgets["key_properties"] == ["id"]
    assert {"id", "object", "created", "_account_id", "_updated_at"} <= set(widgets["schema"]["properties"])
    root = next(m["metadata"] for m in widgets["metadata"] if m["breadcrumb"] == [])
    assert root["forced-replication-method"] == "INCREMENTAL"
    coupons = entries["coupon_list"]
    assert coupons.get("replication_key") is None and coupons["schema"] == entries["coupons"]["schema"]
    assert len(entries) == len(SPECS) + 2


@pytest.mark.e2e  # runs the tap as a process
@pytest.mark.parametrize("entry, message", [
    ({"name": "charges", "path": "/v1/charges"}, "'charges' is a built-in stream"),
    ({"name": "widgets", "path": "/v2/widgets"}, "'path' must be a list path starting with /v1/"),
    ({"name": "widgets", "path": "/v1/customers/{customer}/widgets"}, "without placeholders"),
    ({"name": "Widgets!", "path": "/v1/widgets"}, "snake_case"),
    ({"name": "widgets", "path": "/v1/widgets", "color": "red"}, "unknown key 'color'"),
    ({"name": "widgets", "path": "/v1/widgets", "event_types": ["widget.updated"], "created": True},
     "'event_types' needs 'object'"),
    ({"name": "widgets", "path": "/v1/widgets", "key": []}, "'key' must be a field name"),
])
def test_a_bad_custom_stream_stops_with_one_line(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("{", r"\{")):
        custom_streams({"custom_streams": [entry]}, SPECS)
    run = discover(tmp_path, {"api_key": SANDBOX_KEY, "custom_streams": [entry]})
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("tap-stripe: error: setting 'custom_streams") and message in lines[-1]


@pytest.mark.e2e  # runs the tap as a process
def test_schema_evolution_setting_reads_like_the_others():
    from tap_stripe.settings import validate

    config = {"api_key": SANDBOX_KEY}
    assert validate(config, set(SPECS), {}).schema_evolution is True
    assert validate({**config, "schema_evolution": "false"}, set(SPECS), {}).schema_evolution is False
    with pytest.raises(ConfigError, match="'schema_evolution' must be true or false"):
        validate({**config, "schema_evolution": "maybe"}, set(SPECS), {})
    result = subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"],
                            capture_output=True, text=True, check=True)
    properties = json.loads(result.stdout)["settings"]["properties"]
    assert properties["schema_evolution"]["default"] is True and "custom_streams" in properties
