"""A Stripe table is a class: generated from the spec, customised where it is declared, and
added by following docs/streams.md."""

import copy
import json
import os
import shutil
import subprocess
import sys

from conftest import ROOT, SANDBOX_KEY
from tap_stripe.streams import SPECS, STREAM_CLASSES, generated
from tap_stripe.streams.base import ChildStream, CreatedWindowStream, FullTableStream, ReportStream, SingletonStream


def test_every_table_is_a_class_of_its_kind_named_after_it():
    assert STREAM_CLASSES["charges"].__name__ == "ChargesStream"
    kinds = {"charges": CreatedWindowStream, "checkout_sessions": FullTableStream, "invoice_line_items": ChildStream,
             "balance": SingletonStream, "report_payouts_summary": ReportStream}
    for name, kind in kinds.items():
        assert issubclass(STREAM_CLASSES[name], kind), name
    for name, cls in STREAM_CLASSES.items():
        assert cls.spec.name == name and cls.__name__ == "".join(p.title() for p in name.split("_")) + "Stream"


def test_a_table_is_customised_where_it_is_declared():
    # custom.py: subscriptions include canceled ones; customers expand what Stripe hides.
    assert SPECS["subscriptions"].list_params == (("status", "all"),)
    assert generated.SubscriptionsStream.spec.list_params == ()
    assert "tax" in SPECS["customers"].default_expand
    assert STREAM_CLASSES["subscriptions"].__module__ == "tap_stripe.streams.custom"
    assert SPECS["subscriptions"].path == generated.SubscriptionsStream.path  # the rest is inherited


def test_a_new_stripe_list_added_by_the_recipe_appears_in_discovery(openapi_dir, tmp_path):
    """docs/streams.md, "Add a Stripe table": a list in the spec, `make generate`, and the tap
    discovers it, with one generated class and its schema."""
    spec = json.loads((openapi_dir / "spec3.json").read_text())
    op = copy.deepcopy(spec["paths"]["/v1/apple_pay/domains"]["get"])
    op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["data"]["items"]["$ref"] = \
        "#/components/schemas/widget"
    op["parameters"] = [p for p in op["parameters"] if p["name"] != "domain_name"] + [
        {"in": "query", "name": "created", "required": False, "schema": {"type": "integer"}}]
    spec["paths"]["/v1/widgets"] = {"get": op}
    widget = copy.deepcopy(spec["components"]["schemas"]["apple_pay_domain"])
    widget["properties"]["object"]["enum"] = ["widget"]
    widget["properties"]["colour"] = {"type": "string", "nullable": True, "maxLength": 5000}
    spec["components"]["schemas"]["widget"] = widget
    shared = tmp_path / "openapi"
    shutil.copytree(openapi_dir, shared)
    (shared / "spec3.json").write_text(json.dumps(spec))
    package = tmp_path / "pkg" / "tap_stripe"
    shutil.copytree(ROOT / "tap_stripe", package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--openapi-dir", str(shared),
                    "--out", str(package)], check=True, capture_output=True)
    source = (package / "streams" / "generated.py").read_text()
    assert source.count("class WidgetsStream(CreatedWindowStream):") == 1
    assert (package / "schemas" / "widgets.json").exists()
    (tmp_path / "config.json").write_text(json.dumps({"api_key": SANDBOX_KEY}))
    discovered = subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(tmp_path / "config.json"),
                                 "--discover"], capture_output=True, text=True, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(tmp_path / "pkg")})
    assert discovered.returncode == 0, discovered.stderr[-2000:]
    entry = next(s for s in json.loads(discovered.stdout)["streams"] if s["tap_stream_id"] == "widgets")
    assert {"id", "created", "colour"} <= set(entry["schema"]["properties"])
    assert entry["replication_key"] == "created"
