"""Tests for tap_stripe.sensitive: classification, catalog metadata, protector, scanner."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tap_stripe.reports.columns import REPORT_STREAMS
from tap_stripe.sensitive import (
    CATEGORIES,
    POLICIES,
    Protector,
    catalog_metadata,
    classify_schema,
    validate_policy,
    write_classification,
)
from tap_stripe.sensitive.scan import format_report, scan_records, scan_report

PKG = Path(__file__).resolve().parents[1] / "tap_stripe"
SCHEMAS = {p.stem: json.loads(p.read_text()) for p in sorted((PKG / "schemas").glob("*.json"))}
CLASSIFICATION = json.loads((PKG / "sensitive_fields.json").read_text())
KEY = "test-secret-key"


def customer() -> dict:
    return {
        "id": "cus_NffrFeUfNV2Hib",
        "object": "customer",
        "created": "2024-01-15T10:00:00Z",
        "currency": "usd",
        "balance": 0,
        "name": "Jenny Rosen",
        "email": "Jenny.Rosen@Example.com",
        "phone": "+14155550142",
        "description": "VIP, call Jenny on 415-555-0199",
        "address": {"line1": "510 Townsend St", "line2": "Floor 3", "city": "San Francisco",
                    "state": "CA", "postal_code": "94103", "country": "US"},
        "shipping": {"name": "Jenny Rosen", "phone": "+14155550142",
                     "address": {"line1": "510 Townsend St", "line2": None, "city": "San Francisco",
                                 "state": "CA", "postal_code": "94103", "country": "US"}},
        "metadata": {"crm_owner": "bob@acme-corp.io", "tier": "gold"},
        "tax_ids": {"object": "list", "has_more": False, "url": "/v1/customers/cus_NffrFeUfNV2Hib/tax_ids",
                    "data": [{"id": "txi_1NbWf2", "object": "tax_id", "type": "eu_vat", "value": "DE123456789",
                              "country": "DE", "livemode": False}]},
    }


def charge() -> dict:
    return {
        "id": "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "object": "charge",
        "amount": 1099,
        "currency": "usd",
        "created": "2024-01-15T10:00:00Z",
        "customer": "cus_NffrFeUfNV2Hib",
        "description": "Order #1234 for jenny.rosen@example.com",
        "receipt_email": "jenny.rosen@example.com",
        "statement_descriptor": "ACME SHOP",
        "billing_details": {
            "name": "Jenny Rosen",
            "email": "jenny.rosen@example.com",
            "phone": "+1 (415) 555-0142",
            "address": {"line1": "510 Townsend St", "line2": None, "city": "San Francisco",
                        "state": "CA", "postal_code": "94103", "country": "US"},
        },
        "shipping": None,
        "payment_method_details": {
            "type": "card",
            "card": {"brand": "visa", "country": "US", "exp_month": 12, "exp_year": 2034,
                     "fingerprint": "Xt5EWLLDS7FJjR1c", "funding": "credit", "last4": "4242",
                     "network": "visa", "wallet": None},
        },
        "review": None,
        "metadata": {"order_id": "6735", "note": "ship to back door"},
    }


def invoice() -> dict:
    return {
        "id": "in_1MtHbELkdIwHu7ixl4OzzPMv",
        "object": "invoice",
        "currency": "usd",
        "amount_due": 999,
        "customer": "cus_NffrFeUfNV2Hib",
        "customer_email": "jenny.rosen@example.com",
        "customer_name": "Jenny Rosen",
        "customer_phone": "+14155550142",
        "customer_address": {"line1": "510 Townsend St", "line2": None, "city": "San Francisco",
                             "state": "CA", "postal_code": "94103", "country": "US"},
        "customer_tax_ids": [{"type": "eu_vat", "value": "DE123456789"}],
        "footer": "Thanks Jenny!",
        "description": "Consulting for Jenny Rosen",
        "lines": {"object": "list", "has_more": False, "url": "/v1/invoices/in_1MtHbELkdIwHu7ixl4OzzPMv/lines",
                  "data": [{"id": "il_1MtHbE", "object": "line_item", "amount": 999, "currency": "usd",
                            "description": "2 hours with Jenny Rosen",
                            "metadata": {"contact": "jenny.rosen@example.com"}}]},
        "metadata": {},
    }


RECORDS = {"customers": customer, "charges": charge, "invoices": invoice}
SECRETS = ["Jenny", "Rosen", "jenny.rosen@example.com", "Jenny.Rosen@Example.com", "555-0142", "4155550142",
           "510 Townsend", "San Francisco", "94103", "DE123456789", "Xt5EWLLDS7FJjR1c", "bob@acme-corp.io",
           "Floor 3", "back door"]


def protect(stream: str, record: dict, setting: dict, key: str | None = KEY) -> tuple[dict, dict]:
    p = Protector.from_config(setting, key, CLASSIFICATION)
    assert p is not None
    schema = p.schema(stream, SCHEMAS[stream])
    return p.record(stream, record), schema


# --- classification ------------------------------------------------------------------------


def test_classification_finds_expected_fields():
    c = CLASSIFICATION
    expected = {
        "charges": {"receipt_email": "contact", "billing_details.email": "contact", "billing_details.name": "contact",
                    "billing_details.phone": "contact", "billing_details.address.line1": "address",
                    "billing_details.address.postal_code": "address",
                    "payment_method_details.card.last4": "payment_instrument",
                    "payment_method_details.card.fingerprint": "payment_instrument",
                    "payment_method_details.card.exp_month": "payment_instrument",
                    "description": "free_text", "metadata.*": "free_text", "customer.email": "contact",
                    "shipping.name": "contact", "shipping.address.city": "address"},
        "customers": {"email": "contact", "name": "contact", "phone": "contact", "address.line1": "address",
                      "tax_ids.data[].value": "government_id", "metadata.*": "free_text",
                      "shipping.name": "contact"},
        "invoices": {"customer_email": "contact", "customer_name": "contact", "customer_phone": "contact",
                     "customer_address.line1": "address", "customer_tax_ids[].value": "government_id",
                     "lines.data[].description": "free_text", "lines.data[].metadata.*": "free_text",
                     "footer": "free_text"},
        "customer_tax_ids": {"value": "government_id"},
        "persons": {"first_name": "contact", "dob.year": "government_id"},
    }
    for stream, fields in expected.items():
        for path, category in fields.items():
            assert c[stream].get(path) == category, (stream, path)


def test_classification_leaves_non_sensitive_fields_alone():
    not_sensitive = {
        "charges": ["id", "amount", "currency", "created", "statement_descriptor", "customer",
                    "billing_details.address.country", "payment_method_details.card.brand"],
        "products": ["name", "id", "url", "statement_descriptor"],
        "prices": ["nickname", "currency", "unit_amount", "product.name"],
        "coupons": ["name"],
        "invoices": ["number", "currency", "amount_due", "account_name", "customer"],
        "accounts": ["company.name", "business_profile.name"],
        "issuing_authorizations": ["merchant_data.name", "merchant_data.city"],
    }
    for stream, paths in not_sensitive.items():
        for path in paths:
            assert path not in CLASSIFICATION[stream], (stream, path)
    assert set(c for m in CLASSIFICATION.values() for c in m.values()) <= set(CATEGORIES)


def test_classification_file_in_sync_with_schemas(tmp_path):
    out = tmp_path / "sensitive_fields.json"
    fresh = write_classification(PKG / "schemas", out)
    assert fresh == CLASSIFICATION, "run write_classification (scripts/generate.py) again"
    assert out.read_text() == (PKG / "sensitive_fields.json").read_text()
    assert set(fresh) == set(SCHEMAS) | {spec.name for spec in REPORT_STREAMS}


def test_report_streams_are_classified_and_protected():
    """Report schemas are built in code, not in schemas/: their personal columns still count."""
    stream = "report_balance_change_from_activity_itemized"
    assert CLASSIFICATION[stream]["customer_email"] == "contact"
    assert CLASSIFICATION[stream]["customer_address_line1"] == "address"
    p = Protector.from_config({"categories": {"contact": "hash", "address": "drop"}}, KEY, CLASSIFICATION)
    row = p.record(stream, {"balance_transaction_id": "txn_1", "customer_email": "jenny@example.com",
                            "customer_address_line1": "1 Main St", "gross": 10})
    assert row["customer_email"].startswith("h1:") and "customer_address_line1" not in row
    assert row["gross"] == 10


def test_classify_schema_rules_on_a_small_schema():
    s = {"type": "object", "properties": {
        "name": {"type": ["string", "null"]},
        "product": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
            "name": {"type": "string"}, "description": {"type": "string"}}}, {"type": "null"}]},
        "owner": {"anyOf": [{"type": "string"}, {"type": "object", "properties": {
            "name": {"type": "string"}, "email": {"type": "string"}}}, {"type": "null"}]},
        "items": {"type": "array", "items": {"type": "object", "properties": {"ip": {"type": "string"}}}},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    }}
    assert classify_schema(s) == {"items[].ip": "network", "metadata.*": "free_text",
                                  "owner.email": "contact", "owner.name": "contact",
                                  "product.description": "free_text"}


def test_catalog_metadata_breadcrumbs():
    entries = dict(catalog_metadata(CLASSIFICATION["charges"]))
    assert entries[("properties", "receipt_email")] == {"stripe-sensitive": "contact"}
    assert entries[("properties", "billing_details", "properties", "email")] == {"stripe-sensitive": "contact"}
    assert entries[("properties", "metadata", "additionalProperties")] == {"stripe-sensitive": "free_text"}
    # billing_details.tax_id (added since 2023-08-16) is a government id
    assert entries[("properties", "billing_details")]["stripe-sensitive-nested"] == \
        ["address", "contact", "government_id"]
    inv = dict(catalog_metadata(CLASSIFICATION["invoices"]))
    assert inv[("properties", "lines", "properties", "data", "items", "properties", "description")] == {
        "stripe-sensitive": "free_text"}
    assert ("properties", "amount") not in entries


# --- policy validation ---------------------------------------------------------------------


def test_all_keep_gives_no_protector():
    assert Protector.from_config(None, None, CLASSIFICATION) is None
    assert Protector.from_config({}, None, CLASSIFICATION) is None
    assert Protector.from_config({"categories": {c: "keep" for c in CATEGORIES},
                                  "fields": {"customers.email": "keep"}}, None, CLASSIFICATION) is None


@pytest.mark.parametrize("setting, key, message", [
    ({"categories": {"contact": "hash"}}, None, "sensitive_hash_key"),
    ({"fields": {"customers.email": "hash"}}, "", "sensitive_hash_key"),
    ({"categories": {"contacts": "mask"}}, KEY, "unknown category"),
    ({"categories": {"contact": "encrypt"}}, KEY, "unknown policy"),
    ({"fields": {"customers.email": "nope"}}, KEY, "unknown policy"),
    ({"fields": {"customersemail": "mask"}}, KEY, "<stream>.<path>"),
    ({"fields": {"customer.email": "mask"}}, KEY, "unknown stream"),
    ({"category": {"contact": "mask"}}, KEY, "unknown key"),
])
def test_bad_settings_raise_one_line_errors(setting, key, message):
    with pytest.raises(ValueError) as err:
        Protector.from_config(setting, key, CLASSIFICATION)
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ValueError):
        validate_policy({"sensitive_data": setting, "sensitive_hash_key": key}, CLASSIFICATION)


def test_validate_policy_accepts_good_settings():
    validate_policy({})
    validate_policy({"sensitive_data": {"categories": {c: p for c, p in zip(CATEGORIES, POLICIES * 2)},
                                        "fields": {"charges.billing_details.phone": "keep"}},
                     "sensitive_hash_key": KEY}, CLASSIFICATION)


# --- protection ----------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["hash", "mask", "drop"])
@pytest.mark.parametrize("stream", sorted(RECORDS))
def test_every_category_under_every_policy(stream, policy):
    setting = {"categories": {c: policy for c in CATEGORIES}}
    record, schema = protect(stream, RECORDS[stream](), setting)
    Draft202012Validator(schema).validate(record)
    text = json.dumps(record)
    for secret in SECRETS:
        assert secret not in text, (stream, policy, secret)
    # what is not sensitive survives
    original = RECORDS[stream]()
    assert record["id"] == original["id"] and record["currency"] == original["currency"]
    if stream == "charges":
        assert record["amount"] == 1099 and record["statement_descriptor"] == "ACME SHOP"
        assert record["billing_details"]["address"]["country"] == "US"
        assert record["payment_method_details"]["card"]["brand"] == "visa"


def test_unprotected_records_validate_and_leak():
    # guards the test above: the hand-built records are valid and do contain the secrets
    for stream, make in RECORDS.items():
        Draft202012Validator(SCHEMAS[stream]).validate(make())
    assert all(any(s in json.dumps(m()) for m in RECORDS.values()) for s in SECRETS)


def test_drop_removes_fields_from_record_and_schema():
    setting = {"categories": {c: "drop" for c in CATEGORIES}}
    rec, schema = protect("charges", charge(), setting)
    assert "receipt_email" not in rec and "receipt_email" not in schema["properties"]
    assert "description" not in rec and "description" not in schema["properties"]
    bd = schema["properties"]["billing_details"]["properties"]
    assert set(bd) == {"address"} and set(bd["address"]["properties"]) == {"country"}
    assert rec["billing_details"] == {"address": {"country": "US"}}
    assert rec["metadata"] == {}
    card = rec["payment_method_details"]["card"]
    assert "fingerprint" not in card and "exp_month" not in card and card["brand"] == "visa"
    # the original schema is untouched
    assert "receipt_email" in SCHEMAS["charges"]["properties"]
    # an expanded object's fields are dropped too (path unchanged through anyOf)
    customer_schema = next(m for m in schema["properties"]["customer"]["anyOf"] if "properties" in m)
    assert "email" not in customer_schema["properties"]
    rec2 = charge()
    rec2["customer"] = {"id": "cus_1", "object": "customer", "email": "x@y.com", "name": "Jo"}
    Protector.from_config(setting, None, CLASSIFICATION).record("charges", rec2)
    assert rec2["customer"] == {"id": "cus_1", "object": "customer"}


def test_hash_is_deterministic_across_streams_and_keyed():
    setting = {"categories": {"contact": "hash"}}
    cus, cus_schema = protect("customers", customer(), setting)
    ch, _ = protect("charges", charge(), setting)
    inv, _ = protect("invoices", invoice(), setting)
    h = cus["email"]
    assert h.startswith("h1:") and len(h) == 3 + 64
    assert h == ch["receipt_email"] == ch["billing_details"]["email"] == inv["customer_email"]
    assert cus["name"] == ch["billing_details"]["name"] == inv["customer_name"]
    assert cus_schema["properties"]["email"]["type"] == ["string", "null"]
    other, _ = protect("customers", customer(), setting, key="another-key")
    assert other["email"] != h
    again, _ = protect("customers", customer(), setting)
    assert again == cus


def test_hash_turns_integers_into_strings_and_keeps_nulls():
    rec, schema = protect("charges", charge(), {"categories": {"payment_instrument": "hash", "address": "hash"}})
    card = rec["payment_method_details"]["card"]
    assert isinstance(card["exp_month"], str) and card["exp_month"].startswith("h1:")
    card_schema = schema["properties"]["payment_method_details"]["properties"]["card"]["properties"]
    assert card_schema["exp_month"]["type"] == ["string", "null"]
    assert rec["billing_details"]["address"]["line2"] is None
    Draft202012Validator(schema).validate(rec)


def test_mask_keeps_the_shape():
    setting = {"categories": {c: "mask" for c in CATEGORIES}}
    cus, _ = protect("customers", customer(), setting)
    assert cus["email"] == "J***@Example.com"
    assert cus["name"] == "J**** R****"
    assert cus["phone"] == "+*********42"
    assert cus["address"]["line1"] == "***" and cus["address"]["postal_code"] == "94***"
    assert cus["address"]["country"] == "US"
    assert cus["tax_ids"]["data"][0]["value"] == "*" * len("DE123456789")
    assert cus["metadata"] == {"crm_owner": "***", "tier": "***"}
    ch, schema = protect("charges", charge(), setting)
    assert ch["billing_details"]["phone"] == "+* (***) ***-**42"
    card = ch["payment_method_details"]["card"]
    assert card["last4"] == "4242"
    assert card["fingerprint"] == "*" * 16
    assert card["exp_month"] == "**" and card["exp_year"] == "****"
    assert ch["description"] == "***"
    Draft202012Validator(schema).validate(ch)


def test_network_mask_and_drop():
    rec = {"id": "prv_1", "object": "review", "ip_address": "203.0.113.7",
           "ip_address_location": {"city": "Berlin", "country": "DE", "latitude": 52.5, "longitude": 13.4,
                                   "region": "BE"}}
    p = Protector.from_config({"categories": {"network": "mask"}}, None, CLASSIFICATION)
    out = p.record("reviews", copy.deepcopy(rec))
    assert out["ip_address"] == "203.0.113.*"
    assert out["ip_address_location"]["latitude"] == "***" and out["ip_address_location"]["country"] == "DE"
    Draft202012Validator(p.schema("reviews", SCHEMAS["reviews"])).validate(out)
    v6 = p.record("reviews", {"ip_address": "2001:db8:85a3::8a2e:370:7334"})
    assert v6["ip_address"] == "2001:0db8:85a3:*"
    p = Protector.from_config({"categories": {"network": "drop"}}, None, CLASSIFICATION)
    assert "ip_address" not in p.record("reviews", copy.deepcopy(rec))


def test_field_rules_override_categories():
    setting = {"categories": {"contact": "hash"},
               "fields": {"customers.email": "mask", "charges.billing_details.phone": "keep",
                          "products.name": "drop"}}
    p = Protector.from_config(setting, KEY, CLASSIFICATION)
    cus = p.record("customers", customer())
    assert cus["email"] == "J***@Example.com" and cus["name"].startswith("h1:")
    ch = p.record("charges", charge())
    assert ch["billing_details"]["phone"] == "+1 (415) 555-0142"
    assert ch["billing_details"]["email"].startswith("h1:")
    prod = p.record("products", {"id": "prod_1", "name": "T-shirt"})
    assert prod == {"id": "prod_1"}
    assert "name" not in p.schema("products", SCHEMAS["products"])["properties"]
    assert p.policies("charges")["receipt_email"] == "hash"
    assert "billing_details.phone" not in p.policies("charges")


def test_streams_without_rules_pass_through():
    p = Protector.from_config({"categories": {"government_id": "drop"}}, None, CLASSIFICATION)
    rec = {"id": "prod_1", "name": "T-shirt", "description": "Cotton"}
    assert p.record("products", rec) == {"id": "prod_1", "name": "T-shirt", "description": "Cotton"}
    assert p.schema("products", SCHEMAS["products"]) == SCHEMAS["products"]


# --- scanner -------------------------------------------------------------------------------


def test_scanner_finds_planted_values_and_coverage():
    cus = customer()
    cus["metadata"]["backup"] = "call +44 20 7946 0958"
    rec_inv = invoice()
    rec_inv["custom_note"] = "ask for jane.doe@example.org"  # not in the schema: uncovered
    rec_inv["lines"]["data"][0]["period_note"] = "IP 198.51.100.23, card 4242 4242 4242 4242"
    findings = {
        "customers": scan_records("customers", [cus], CLASSIFICATION),
        "invoices": scan_records("invoices", [rec_inv], CLASSIFICATION),
    }
    got = {(f["stream"], f["path"], f["kind"]): f for rows in findings.values() for f in rows}
    assert got[("customers", "metadata.*", "email")]["covered"] is True
    assert got[("customers", "metadata.*", "email")]["category"] == "free_text"
    assert got[("customers", "metadata.*", "phone")]["covered"] is True
    assert got[("customers", "description", "phone")]["covered"] is True
    assert got[("customers", "email", "email")]["category"] == "contact"
    assert got[("invoices", "custom_note", "email")]["covered"] is False
    assert got[("invoices", "lines.data[].period_note", "ip")]["covered"] is False
    assert got[("invoices", "lines.data[].period_note", "card")]["covered"] is False
    assert got[("invoices", "lines.data[].metadata.*", "email")]["covered"] is True
    # no false positives on ids, timestamps, amounts, currencies, Stripe URLs
    paths = {p for (_, p, _) in got}
    for p in ("id", "created", "currency", "amount_due", "lines.url", "customer", "lines.data[].id"):
        assert p not in paths
    report = scan_report(findings)
    assert report["uncovered"] == 3 and report["findings"][0]["covered"] is False
    text = format_report(report)
    assert "custom_note" in text and "NO" in text
    assert "jane.doe@example.org" not in text and "j***@example.org" in text


@pytest.mark.parametrize("value", [
    "ch_3MmlLrLkdIwHu7ix0snN0B15", "cus_NffrFeUfNV2Hib", "2024-01-15T10:00:00Z", "1705312800",
    "1099", "usd", "https://pay.stripe.com/receipts/acct_1/ch_3MmlLr/rcpt_Nf", "12.50", "v2023.08.16",
    "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH", "1705312800000",
])
def test_scanner_ignores_non_personal_values(value):
    assert scan_records("charges", [{"description": value}], CLASSIFICATION) == []


@pytest.mark.parametrize("value, kind", [
    ("+14155550142", "phone"), ("(415) 555-0142", "phone"), ("020 7946 0958", "phone"),
    ("a@b.co", "email"), ("10.0.0.1", "ip"), ("fe80::1ff:fe23:4567:890a", "ip"),
    ("5555555555554444", "card"),
])
def test_scanner_detects(value, kind):
    rows = scan_records("charges", [{"description": f"x {value} y"}], CLASSIFICATION)
    assert [r["kind"] for r in rows] == [kind]


# ---------------------------------------------------------------------------------------------
# Over a full sync against the sandbox, in a subprocess like a pipeline
# ---------------------------------------------------------------------------------------------

SYNC_STREAMS = ["customers", "charges", "invoices", "payment_methods", "setup_attempts"]


def _known_personal_values(sandbox):
    """Emails, phones and IPs the sandbox holds, found by walking its objects."""
    found = set()

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif (isinstance(value, str) and key in ("email", "receipt_email", "phone", "ip_address", "ip")
              and len(value) > 6):
            found.add(value)

    for stream in ("customers", "charges", "invoices"):
        for obj in sandbox.truth(stream):
            walk(obj)
    return found


@pytest.mark.parametrize("policy", ["hash", "mask", "drop"])
def test_no_personal_value_reaches_stdout_under_each_policy(sandbox, run_tap, policy):
    from conftest import catalog_for, tap_config

    known = _known_personal_values(sandbox)
    assert len(known) > 20
    config = tap_config(sandbox, sensitive_hash_key="k-123",
                        sensitive_data={"categories": {c: policy for c in CATEGORIES}})
    result = run_tap(config, catalog=catalog_for(SYNC_STREAMS))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.records("customers") and result.records("charges")
    leaked = [value for value in known if value in result.stdout]
    assert not leaked, f"{policy}: clear text reached stdout: {leaked[:5]}"
    schemas = {m["stream"]: m["schema"] for m in result.messages if m["type"] == "SCHEMA"}
    for message in result.messages:
        if message["type"] == "RECORD":
            errors = list(Draft202012Validator(schemas[message["stream"]]).iter_errors(message["record"]))
            assert not errors, f"{policy} {message['stream']}: {errors[0].message[:200]}"


def test_hashes_join_across_streams_and_runs(sandbox, run_tap):
    from conftest import catalog_for, tap_config

    # Plant a customer's email as a charge's receipt email: the streams share at least that one.
    shared_customer = next(c for c in sandbox.truth("customers") if c.get("email"))
    shared_charge = sandbox.truth("charges")[0]
    sandbox.update("charges", shared_charge["id"], {"receipt_email": shared_customer["email"]})
    config = tap_config(sandbox, sensitive_hash_key="k-123", sensitive_data={"categories": {"contact": "hash"}})
    first = run_tap(config, catalog=catalog_for(["customers", "charges"]))
    second = run_tap(config, catalog=catalog_for(["customers", "charges"]))
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    emails = {r["email"] for r in first.records("customers") if r.get("email")}
    assert emails and all(e.startswith("h1:") for e in emails)
    receipt = {r["receipt_email"] for r in first.records("charges") if r.get("receipt_email")}
    truth_customers = {c["email"] for c in sandbox.truth("customers")}
    truth_receipts = {c["receipt_email"] for c in sandbox.truth("charges") if c.get("receipt_email")}
    assert shared_customer["email"] in truth_customers & truth_receipts
    assert emails & receipt, "the same email must hash the same in both streams"
    hashed_email = {r["id"]: r["email"] for r in first.records("customers")}[shared_customer["id"]]
    hashed_receipt = {r["id"]: r["receipt_email"] for r in first.records("charges")}[shared_charge["id"]]
    assert hashed_email.startswith("h1:") and hashed_email == hashed_receipt, "one email, one hash across streams"
    assert shared_customer["email"] not in first.stdout
    assert emails == {r["email"] for r in second.records("customers") if r.get("email")}


def test_scan_finds_personal_data_planted_in_metadata_and_descriptions(sandbox, run_tap, tmp_path):
    from conftest import catalog_for, tap_config

    customer = sandbox.truth("customers")[0]
    sandbox.update("customers", customer["id"], {"metadata": {"contact": "planted.person@example.org"},
                                                 "description": "call me at +1 (415) 555-0187"})
    product = sandbox.truth("products")[0]
    sandbox.update("products", product["id"], {"metadata": {"owner_ip": "203.0.113.77"}})
    report_path = tmp_path / "scan.json"
    result = run_tap(tap_config(sandbox), catalog=catalog_for(["customers", "products"]),
                     args=("--scan-sensitive", str(report_path)))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    rows = {(f["stream"], f["path"], f["kind"]) for f in report["findings"]}
    assert ("customers", "metadata.*", "email") in rows
    assert ("customers", "description", "phone") in rows
    assert ("products", "metadata.*", "ip") in rows
    assert "planted.person" not in result.stdout  # the report masks what it found
    assert "metadata.*" in result.stdout


# ---------------------------------------------------------------------------------------------
# Parents and children share nested objects: each record gets its own stream's policy, once
# ---------------------------------------------------------------------------------------------


def _h(key: str, value: str) -> str:
    """The documented hash, computed here independently of the tap."""
    return "h1:" + hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def _subscription_with_item() -> tuple[dict, dict, dict]:
    """(parent, child, shared): a subscription whose embedded item is the child's source, the
    child made the way the engine makes it (a shallow copy), so both hold the same `metadata`
    dict and the same `tax_rates` list."""
    shared = {"owner": "Bob@Acme-Corp.io", "tier": "gold"}
    tax_rates = [{"id": "txr_1", "object": "tax_rate", "description": "VAT for bob@acme-corp.io",
                  "metadata": {"note": "call +44 20 7946 0958"}}]
    item = {"id": "si_1", "object": "subscription_item", "metadata": shared, "tax_rates": tax_rates,
            "quantity": 1, "subscription": "sub_1"}
    parent = {"id": "sub_1", "object": "subscription", "metadata": {},
              "items": {"object": "list", "has_more": False, "data": [item]}}
    return parent, dict(item), shared


@pytest.mark.parametrize("parent_first", [True, False])
def test_records_sharing_a_nested_dict_are_each_protected_independently(parent_first):
    """A hash applies once per record whoever goes first, and a rule of one stream changes
    nothing of another stream's record, nor the objects they share."""
    p = Protector.from_config({"categories": {"free_text": "hash"},
                               "fields": {"subscriptions.items.data[].tax_rates[].description": "drop"}},
                              KEY, CLASSIFICATION)
    parent, child, shared = _subscription_with_item()
    before = copy.deepcopy((parent, child))
    embedded = parent["items"]["data"][0]
    for stream, record in ([("subscriptions", parent), ("subscription_items", child)][::1 if parent_first else -1]):
        assert p.record(stream, record) is record
    hashed = {"owner": _h(KEY, "bob@acme-corp.io"), "tier": _h(KEY, "gold")}  # an email is hashed lowercased
    assert child["metadata"] == hashed  # h(x), not h(h(x))
    assert parent["items"]["data"][0]["metadata"] == hashed  # joins with the child's value
    assert child["tax_rates"][0]["description"] == _h(KEY, "VAT for bob@acme-corp.io")  # not dropped
    assert child["tax_rates"][0]["metadata"]["note"] == _h(KEY, "call +44 20 7946 0958")
    assert "description" not in parent["items"]["data"][0]["tax_rates"][0]
    assert parent["items"]["data"][0]["tax_rates"][0]["metadata"] == child["tax_rates"][0]["metadata"]
    # the shared objects themselves were copied, never changed
    assert shared == before[1]["metadata"] and embedded == before[0]["items"]["data"][0]
    assert child["metadata"] is not shared and parent["items"]["data"][0] is not embedded


def test_protection_copies_only_the_paths_it_changes():
    p = Protector.from_config({"categories": {"free_text": "mask"}}, None, CLASSIFICATION)
    parent, _, shared = _subscription_with_item()
    untouched = {"id": "si_2", "object": "subscription_item", "metadata": {}, "tax_rates": []}
    parent["items"]["data"].append(untouched)
    record = p.record("subscriptions", parent)
    assert record["items"]["data"][1] is untouched  # nothing to change: still shared, not copied
    assert record["items"]["data"][0]["metadata"] == {"owner": "***", "tier": "***"}
    assert shared == {"owner": "Bob@Acme-Corp.io", "tier": "gold"}


def test_shaping_never_changes_objects_below_the_record():
    """A child record and its parent's embedded list share nested objects: shaping either
    converts times in copies, leaving the shared objects (and the other record) as they were."""
    from tap_stripe.output.records import RecordShaper
    from tap_stripe.tap import load_schema

    period = {"start": 1767225600, "end": 1769904000}
    line = {"id": "il_1", "object": "line_item", "period": period, "metadata": {}}
    invoice_obj = {"id": "in_1", "object": "invoice", "created": 1767225600,
                   "lines": {"object": "list", "has_more": False, "data": [line]}}
    child = dict(line)
    RecordShaper(load_schema("invoice_line_items"), None).shape(child, None, 1767225600)
    assert child["period"] == {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
    assert period == {"start": 1767225600, "end": 1769904000} and invoice_obj["lines"]["data"][0] is line
    shaped = RecordShaper(load_schema("invoices"), "created").shape(invoice_obj, None)
    assert shaped["lines"]["data"][0]["period"]["start"] == "2026-01-01T00:00:00Z"
    assert line["period"] is period and period["start"] == 1767225600
    assert child["period"] is not period


def _planted_item(sandbox):
    """A subscription item whose metadata holds a customer's email (so it can join), and that
    customer; the sandbox embeds the item in its subscription's `items` list."""
    customer_row = next(c for c in sandbox.truth("customers") if c.get("email"))
    item = sandbox.truth("subscription_items")[0]
    sandbox.update("subscription_items", item["id"], {"metadata": {"owner": customer_row["email"], "tier": "gold"}})
    return item["id"], customer_row


def test_child_records_are_hashed_once_and_join_with_parent_and_other_streams(sandbox, run_tap):
    """Through the CLI: `subscription_items` are the objects embedded in `subscriptions`
    (`items`), and each record's metadata is hashed exactly once: h(x), equal to the same
    value in the parent's `items` and to a customer's hashed email."""
    from conftest import catalog_for, tap_config

    item_id, customer_row = _planted_item(sandbox)
    key = "k-123"
    config = tap_config(sandbox, sensitive_hash_key=key,
                        sensitive_data={"categories": {"free_text": "hash", "contact": "hash"}})
    result = run_tap(config, catalog=catalog_for(["customers", "subscriptions", "subscription_items"]))
    assert result.returncode == 0, result.stderr[-2000:]
    truth = {i["id"]: i for i in sandbox.truth("subscription_items")}
    children = {r["id"]: r for r in result.records("subscription_items")}
    assert set(children) == set(truth)
    embedded = {i["id"]: i for s in result.records("subscriptions") for i in s["items"]["data"]}
    assert set(embedded) == set(truth)
    checked = 0
    for item_id_, record in children.items():
        want = {k: _h(key, v) for k, v in truth[item_id_]["metadata"].items()}
        assert record["metadata"] == want, f"{item_id_}: metadata not hashed exactly once"
        assert embedded[item_id_]["metadata"] == want  # joins with the parent's copy
        checked += len(want)
    assert checked >= 5  # a real check, not a vacuous one
    email = customer_row["email"]
    hashed_email = {r["id"]: r["email"] for r in result.records("customers")}[customer_row["id"]]
    assert hashed_email == _h(key, email.strip().lower())
    assert children[item_id]["metadata"]["owner"] == hashed_email  # joins across streams
    assert email not in result.stdout


def test_drop_rule_on_parent_embedded_items_leaves_child_stream_untouched(sandbox, run_tap):
    """A `drop` on `subscriptions.items.data[].metadata.*` removes it from the subscriptions'
    embedded items only: `subscription_items` come out exactly as without the rule."""
    from conftest import catalog_for, tap_config

    _planted_item(sandbox)
    catalog = catalog_for(["subscriptions", "subscription_items"])
    plain = run_tap(tap_config(sandbox), catalog=catalog)
    config = tap_config(sandbox, sensitive_data={"fields": {"subscriptions.items.data[].metadata.*": "drop"}})
    dropped = run_tap(config, catalog=catalog)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert dropped.returncode == 0, dropped.stderr[-2000:]
    children = {r["id"]: r for r in dropped.records("subscription_items")}
    assert children == {r["id"]: r for r in plain.records("subscription_items")}
    assert sum(len(r["metadata"]) for r in children.values()) >= 5  # the child kept real metadata
    truth = {i["id"]: i["metadata"] for i in sandbox.truth("subscription_items")}
    assert {i: r["metadata"] for i, r in children.items()} == truth
    items = [i for s in dropped.records("subscriptions") for i in s["items"]["data"]]
    assert len(items) == len(truth) and all(i["metadata"] == {} for i in items)
