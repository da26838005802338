"""The committed stream classes and schemas are exactly what the generator makes from the pinned
`stripe` package, the generator's rules hold against Stripe's own catalogs, and
docs/api-versions.md is current."""

import ast
import filecmp
import importlib.metadata
import json
import re
import subprocess
import sys

import pytest
from conftest import OPENAPI_DIR, ROOT

sys.path.insert(0, str(ROOT / "scripts"))

import generate
from stripe_sdk_source import UNIX_TIME_NAME, SdkReader

from tap_stripe.streams import generated

# Stripe's 2023-08-16 spec, the part the generator reads (scripts/openapi_extract.py).
SPEC_2023 = OPENAPI_DIR / "spec3-extract.json"


def _pinned_stripe() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'"stripe==([^"]+)"', text)[1]


@pytest.fixture(scope="module")
def sdk():
    installed = importlib.metadata.version("stripe")
    assert installed == _pinned_stripe(), \
        f"stripe {installed} is installed, pyproject.toml pins {_pinned_stripe()}: pip install -e '.[test]'"
    reader = SdkReader()
    return reader, reader.openapi()


def _compare(fresh, committed):
    assert (fresh / "streams" / "generated.py").read_text() == (committed / "streams" / "generated.py").read_text(), \
        "tap_stripe/streams/generated.py drifted from scripts/generate.py: run `make generate`"
    assert (fresh / "sensitive_fields.json").read_text() == (committed / "sensitive_fields.json").read_text(), \
        "tap_stripe/sensitive_fields.json drifted: run `make generate`"
    names = sorted(p.name for p in (fresh / "schemas").glob("*.json"))
    assert names == sorted(p.name for p in (committed / "schemas").glob("*.json")), \
        "schema files differ from the generator's: run `make generate`"
    _, mismatch, errors = filecmp.cmpfiles(fresh / "schemas", committed / "schemas", names, shallow=False)
    assert not mismatch and not errors, f"schemas drifted: {mismatch[:5]}: run `make generate`"


@pytest.mark.e2e  # runs a generator over the whole API as a process
def test_generated_files_match_the_generator(sdk, tmp_path):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True)
    _compare(tmp_path, ROOT / "tap_stripe")


def test_the_generated_version_is_the_pinned_packages(sdk):
    reader, spec = sdk
    assert f"stripe=={_pinned_stripe()}" == generated.GENERATED_FROM
    assert generated.API_VERSION == reader.api_version == spec["info"]["version"]


@pytest.mark.e2e  # runs a generator over the whole API as a process
def test_an_openapi_file_gives_the_same_format(tmp_path):
    """`--openapi FILE` (here the extract of Stripe's 2023-08-16 spec) goes through the same rules into the
    same files."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--openapi",
                    str(SPEC_2023), "--out", str(tmp_path)], check=True, capture_output=True)
    source = (tmp_path / "streams" / "generated.py").read_text()
    assert 'API_VERSION = "2023-08-16"' in source and 'GENERATED_FROM = "openapi"' in source
    classes = {n.name: n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)}
    assert ast.unparse(classes["ChargesStream"].bases[0]) == "CreatedWindowStream"
    assert ast.unparse(classes["UsageRecordSummariesStream"].bases[0]) == "ChildStream"  # a 2023-only list
    ours = {n.name for n in ast.parse((ROOT / "tap_stripe" / "streams" / "generated.py").read_text()).body
            if isinstance(n, ast.ClassDef)}
    assert len(set(classes) & ours) > 85
    charges = json.loads((tmp_path / "schemas" / "charges.json").read_text())
    assert charges["properties"]["created"] == {"format": "date-time", "type": ["string", "null"]}
    assert "invoice" in charges["properties"]  # removed from charges since 2023
    assert json.loads((tmp_path / "sensitive_fields.json").read_text())["charges"]


def test_the_new_lists_are_streams_with_their_rules():
    specs = {cls.spec.name: cls.spec for cls in vars(generated).values() if hasattr(cls, "spec")}
    assert specs["billing_meters"].event_types[0].startswith("billing.meter.")
    assert specs["climate_orders"].retrieve_path == "/v1/climate/orders/{id}"
    assert specs["invoice_payments"].replication_key == "created"
    assert (specs["issuing_tokens"].parent, specs["issuing_tokens"].parent_param) == ("issuing_cards", "card")
    assert specs["product_features"].parent_via == "path" and not specs["product_features"].event_types
    # `customer.tax_id.*` are customers' tax ids: the child list's, not the account's own (`/v1/tax_ids`).
    assert not specs["tax_ids"].event_types
    assert "customer.tax_id.deleted" in specs["customer_tax_ids"].event_types
    # Customer sources can be `account` objects, but `account.*` events are the accounts' lists'.
    assert not [t for t in specs["customer_sources"].event_types if t.startswith("account.")]
    assert specs["customer_sources"].deleted_event == "customer.source.deleted"
    assert "/v1/billing/meters/{id}/event_summaries" in generated.EXCLUDED_LISTS
    assert "usage_record_summaries" not in specs and "issuing_settlements" not in specs  # gone from Stripe


def test_event_objects_agree_with_stripes_event_catalog(sdk):
    """The object each event type is about, by the generator's rule (the SDK's event classes,
    else the type's name, EVENT_OBJECTS where neither tells), is the one Stripe's catalog
    names, for the pinned package's types and for the 2023 spec's."""
    from stripe_sdk_source import event_types

    reader, spec = sdk
    catalog = {e["type"]: e["object"] for e in json.loads((OPENAPI_DIR / "event-types.json").read_text())["events"]}
    types, related = event_types(reader)
    objects = {generate.object_value(c, n) for n, c in spec["components"]["schemas"].items()}
    checked = 0
    for event_type in types:
        expected = catalog.get(event_type)
        if expected and set(expected.split("|")) <= objects:
            assert generate.event_object(event_type, related, objects) == expected, event_type
            checked += 1
    assert checked > 200
    _old_spec, old_events = generate.load_openapi(SPEC_2023)
    in_spec = {e["type"]: e["object"] for e in json.loads((OPENAPI_DIR / "event-types.json").read_text())["events"]
               if e["in_spec"]}
    assert {t: o for o, ts in old_events.items() for t in ts} == \
        {t: o for t, o in in_spec.items() if t not in ("order.created", "sku.created", "sku.deleted", "sku.updated",
                                                       "recipient.created", "recipient.deleted", "recipient.updated")}


def test_the_unix_time_rule_matches_the_2023_spec():
    """The SDK marks only some unix times in its docstrings; the rest by name. Every integer the
    2023 spec marks `unix-time` has such a name, and the names it matches that the spec left
    unmarked are all times too (read their descriptions)."""
    components = json.loads(SPEC_2023.read_text())["components"]["schemas"]
    marked, unmarked = set(), set()
    for component in components.values():
        for name, prop in (component.get("properties") or {}).items():
            if prop.get("type") == "integer":
                (marked if prop.get("format") == "unix-time" else unmarked).add(name)
    assert not {n for n in marked if not UNIX_TIME_NAME.search(n)}
    assert {n for n in unmarked - marked if UNIX_TIME_NAME.search(n)} == {
        "check_in_at", "clearing_date", "departure_at", "expected_availability_date", "subscription_proration_date"}


@pytest.mark.e2e  # runs a generator over the whole API as a process
def test_api_versions_doc_is_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "api_versions.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_2023_extract_names_its_source_and_holds_only_what_the_extractor_keeps():
    """The extract says where it came from, and running the extractor on it changes nothing: no
    field the generator does not read has been added to it by hand."""
    import openapi_extract

    extract = json.loads(SPEC_2023.read_text())
    made = extract["info"]["x-extract"]
    assert made["repository"] == "stripe/openapi" and made["commit"] == openapi_extract.SOURCE["commit"]
    assert made["commit"] in (OPENAPI_DIR / "README.md").read_text()
    again = openapi_extract.extract(extract, made["sha256"])
    again["info"]["x-extract"] = made
    assert again == extract


def test_nothing_in_the_repo_reads_outside_it():
    """Every input of the generators and tests is in the repository (data/stripe-openapi)."""
    outside = "../" + "shared"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    hits = [name for name in tracked.decode().split("\0") if name and (ROOT / name).is_file()
            and outside.encode() in (ROOT / name).read_bytes()]
    assert not hits, f"{outside} is named in {hits}"
