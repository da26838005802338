"""The plugin: discovery without network, --about, the catalog, and the SDK record path."""

import copy
import io
import json
import subprocess
import sys

import pytest
from conftest import OPENAPI_DIR, ROOT, SANDBOX_KEY, catalog_for
from jsonschema import Draft202012Validator, FormatChecker

from tap_stripe.output.emitter import Emitter
from tap_stripe.output.records import RecordShaper
from tap_stripe.output.writer import FastWriter
from tap_stripe.reports.columns import REPORTS_BY_NAME
from tap_stripe.streams import STREAMS
from tap_stripe.tap import SPECS, TapStripe, load_schema


@pytest.mark.e2e  # runs the tap as a process
def test_discover_offline_lists_every_stream_with_keys_method_and_schema(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"api_key": SANDBOX_KEY, "api_url": "http://127.0.0.1:9"}))
    out = subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(config), "--discover"],
                         capture_output=True, text=True, check=True).stdout
    catalog = json.loads(out)
    streams = {s["tap_stream_id"]: s for s in catalog["streams"]}
    assert len(streams) >= 90
    # Exactly the table's streams, each with its committed schema file, and the report streams.
    schema_files = {p.stem for p in (ROOT / "tap_stripe" / "schemas").glob("*.json")}
    assert {spec.name for spec in STREAMS} == schema_files
    assert set(streams) == schema_files | set(REPORTS_BY_NAME) == set(SPECS)
    assert len(streams) == len(catalog["streams"]), "a stream is listed twice"
    for name, entry in streams.items():
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert entry["schema"]["properties"], name
        assert root["forced-replication-method"] in ("INCREMENTAL", "FULL_TABLE"), name
        if name not in ("balance",):
            assert root["table-key-properties"], name
    assert streams["charges"]["key_properties"] == ["id"]
    charges_root = next(m["metadata"] for m in streams["charges"]["metadata"] if m["breadcrumb"] == [])
    assert charges_root["replication-key"] == "created"
    assert charges_root["forced-replication-method"] == "INCREMENTAL"
    invoice_items = next(m["metadata"] for m in streams["invoice_items"]["metadata"] if m["breadcrumb"] == [])
    assert invoice_items["replication-key"] == "date"
    assert "id" not in {m["metadata"].get("replication-key") for s in streams.values() for m in s["metadata"]}


@pytest.mark.e2e  # runs the tap as a process
def test_discover_lists_the_current_versions_new_streams_with_schemas(tmp_path):
    """Lists Stripe added after 2023-08-16 are streams, with schemas generated from the pinned
    `stripe` package (tests/test_generate.py checks they are the generator's)."""
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"api_key": SANDBOX_KEY}))
    out = subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(config), "--discover"],
                         capture_output=True, text=True, check=True).stdout
    streams = {s["tap_stream_id"]: s for s in json.loads(out)["streams"]}
    expected = {"billing_meters": {"event_name", "display_name", "status", "customer_mapping"},
                "billing_credit_grants": {"amount", "customer", "category", "expires_at"},
                "entitlements_features": {"lookup_key", "name", "active"},
                "tax_registrations": {"country", "country_options", "active_from", "status"},
                "climate_orders": {"metric_tons", "product", "status", "amount_total"}}
    for name, fields in expected.items():
        entry = streams[name]
        properties = entry["schema"]["properties"]
        assert {"id", "object", "livemode", "_account_id"} | fields <= set(properties), name
        assert set(properties) == set(load_schema(name)["properties"]), name  # the generated schema
        root = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        assert root["table-key-properties"] == ["id"] and root["selected-by-default"] is True, name
    assert streams["tax_registrations"]["schema"]["properties"]["active_from"]["format"] == "date-time"


def test_every_schema_types_unix_times_as_datetime_and_metadata_as_strings():
    for spec in STREAMS:
        schema = load_schema(spec.name)
        props = schema["properties"]
        if "created" in props:
            assert props["created"]["format"] == "date-time", spec.name
        if "metadata" in props:
            assert props["metadata"]["additionalProperties"]["type"] == ["string", "null"], spec.name
        assert props["deleted"]["type"] == ["boolean", "null"]


def test_multi_account_keys_include_the_account(tmp_path):
    tap = TapStripe(config={"api_key": SANDBOX_KEY, "connected_accounts": "all"}, validate_config=False)
    assert tap.streams["charges"].primary_keys == ["_account_id", "id"]


@pytest.mark.e2e  # runs the tap as a process
def test_about_lists_settings_and_marks_secrets():
    out = subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    about = json.loads(out)
    settings = about["settings"]["properties"]
    for name in ("api_key", "account_id", "start_date", "end_date", "api_url", "api_version", "expand",
                 "request_timeout", "user_agent", "max_retries", "max_workers", "lookback_seconds"):
        assert name in settings, name
    for secret in ("api_key", "oauth_refresh_token", "oauth_client_secret", "sensitive_hash_key"):
        assert settings[secret].get("secret") is True, secret
    assert settings["api_version"]["default"] == "2026-10-28.endive"


def test_fixture_objects_validate_after_the_record_path():
    """Stripe's example object for each resource, shaped by the tap, fits the stream's schema."""
    fixtures = json.loads((OPENAPI_DIR / "fixtures3.json").read_text())["resources"]
    checked = 0
    for spec in STREAMS:
        for object_type in spec.object_types:
            example = fixtures.get(object_type)
            if example is None:
                continue
            schema = load_schema(spec.name)
            record = RecordShaper(schema, spec.created_field).shape(copy.deepcopy(example), None)
            errors = list(Draft202012Validator(schema, format_checker=FormatChecker()).iter_errors(record))
            assert not errors, f"{spec.name}: {errors[0].message[:300]} at {list(errors[0].path)}"
            checked += 1
    assert checked >= 60


class _Sink:
    def __init__(self):
        self.lines = []

    def record(self, stream, record, extracted, version=None):
        self.lines.append({"stream": stream, "record": record})


@pytest.mark.parametrize("case", ["all_selected", "deselected", "stream_map"])
def test_record_path_matches_the_sdk(sandbox, case):
    """Golden output: the engine's record path equals the SDK's own for the same records."""
    config = {"api_key": SANDBOX_KEY}
    catalog = catalog_for(["charges"])
    if case == "deselected":
        for meta in next(s for s in catalog["streams"] if s["tap_stream_id"] == "charges")["metadata"]:
            if meta["breadcrumb"] in (["properties", "description"], ["properties", "billing_details"]):
                meta["metadata"]["selected"] = False
    if case == "stream_map":
        config["stream_maps"] = {"charges": {"amount_major": "amount / 100", "receipt_email": None,
                                             "__alias__": "payments"}}
    tap = TapStripe(config=config, catalog=catalog, validate_config=False)
    stream = tap.streams["charges"]
    shaper = RecordShaper(stream.schema, "created")
    records = [shaper.shape(obj, None) for obj in sandbox.truth("charges")[:50]]
    assert records
    sink = _Sink()
    emit = Emitter(stream, sink)
    for record in copy.deepcopy(records):
        emit(record, "2026-01-01T00:00:00Z", None)
    expected = [{"stream": m.stream, "record": m.record}
                for record in copy.deepcopy(records) for m in stream._generate_record_messages(record)]
    assert sink.lines == expected
    # The worker path (records serialised where they were fetched) must give the same lines.
    lines_emitter = Emitter(stream, FastWriter(io.BytesIO()))
    if lines_emitter.in_worker:
        rendered = [json.loads(lines_emitter.render(record, "2026-01-01T00:00:00Z", None))
                    for record in copy.deepcopy(records)]
        assert [{"stream": m["stream"], "record": m["record"]} for m in rendered] == expected
    else:
        assert case == "stream_map", "only stream maps keep records on the main thread"
    if case == "deselected":
        assert "description" not in sink.lines[0]["record"]
    if case == "stream_map":
        assert sink.lines[0]["stream"] == "payments" and "amount_major" in sink.lines[0]["record"]


def test_deselecting_a_nested_field_of_a_child_leaves_the_parent_it_shares_it_with(sandbox):
    """invoice_line_items records share their nested dicts with the invoices' embedded `lines`
    (a child task may finish first, on another thread): pruning `period.start` from the child
    copies `period`, it never changes the dict the parent holds."""
    catalog = catalog_for(["invoices", "invoice_line_items"])
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "invoice_line_items":
            entry["metadata"].append({"breadcrumb": ["properties", "period", "properties", "start"],
                                      "metadata": {"selected": False}})
    tap = TapStripe(config={"api_key": SANDBOX_KEY}, catalog=catalog, validate_config=False)
    stream = tap.streams["invoice_line_items"]
    line = next(line for invoice in sandbox.truth("invoices") for line in invoice["lines"]["data"])
    record = RecordShaper(stream.schema, None).shape(dict(line), None)
    shared_period = record["period"]
    sink = _Sink()
    Emitter(stream, sink)(record, "2026-01-01T00:00:00Z", None)
    assert "start" not in sink.lines[0]["record"]["period"]
    assert "start" in shared_period, "the parent's copy of the line lost a field"
