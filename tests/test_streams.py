"""A Stripe table is a class: generated from Stripe's SDK, customised where it is declared, and
added by following docs/streams.md."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, SANDBOX_KEY

from tap_stripe.streams import SPECS, STREAM_CLASSES, generated
from tap_stripe.streams.base import ChildStream, CreatedWindowStream, FullTableStream, ReportStream, SingletonStream


def test_every_table_is_a_class_of_its_kind_named_after_it():
    assert STREAM_CLASSES["charges"].__name__ == "ChargesStream"
    kinds = {"charges": CreatedWindowStream, "payment_links": FullTableStream, "invoice_line_items": ChildStream,
             "balance": SingletonStream, "report_payouts_summary": ReportStream}
    for name, kind in kinds.items():
        assert issubclass(STREAM_CLASSES[name], kind), name
    for name, cls in STREAM_CLASSES.items():
        assert cls.spec.name == name and cls.__name__ == "".join(p.title() for p in name.split("_")) + "Stream"


def test_a_table_is_customised_where_it_is_declared():
    # overrides.py: subscriptions include canceled ones; customers expand what Stripe hides.
    assert SPECS["subscriptions"].list_params == (("status", "all"),)
    assert generated.SubscriptionsStream.spec.list_params == ()
    assert "tax" in SPECS["customers"].default_expand
    assert STREAM_CLASSES["subscriptions"].__module__ == "tap_stripe.streams.overrides"
    assert SPECS["subscriptions"].path == generated.SubscriptionsStream.path  # the rest is inherited


WIDGET = '''
from stripe._listable_api_resource import ListableAPIResource
from stripe._stripe_object import StripeObject, UntypedStripeObject
from typing import ClassVar, Optional
from typing_extensions import Literal


class Widget(ListableAPIResource["Widget"]):
    """A widget."""

    OBJECT_NAME: ClassVar[Literal["widget"]] = "widget"

    class Size(StripeObject):
        width: int

    colour: Optional[str]
    """
    The widget's colour.
    """
    created: int
    """
    Time at which the object was created. Measured in seconds since the Unix epoch.
    """
    id: str
    metadata: UntypedStripeObject[str]
    object: Literal["widget"]
    size: Optional[Size]
'''

WIDGET_SERVICE = '''
from stripe._stripe_service import StripeService
from typing import Optional, cast
from typing_extensions import TYPE_CHECKING

if TYPE_CHECKING:
    from stripe._list_object import ListObject
    from stripe._widget import Widget
    from stripe.params._widget_list_params import WidgetListParams


class WidgetService(StripeService):
    def list(self, params: Optional["WidgetListParams"] = None) -> "ListObject[Widget]":
        return cast("ListObject[Widget]", self._request("get", "/v1/widgets", base_address="api", params=params))

    def retrieve(self, widget: str, params: Optional["WidgetListParams"] = None) -> "Widget":
        return cast("Widget", self._request("get", "/v1/widgets/{widget}".format(widget=widget), params=params))
'''

WIDGET_PARAMS = '''
from stripe._request_options import RequestOptions
from typing_extensions import NotRequired


class WidgetListParams(RequestOptions):
    created: NotRequired["WidgetListParamsCreated|int"]
    limit: NotRequired[int]
    starting_after: NotRequired[str]
'''


@pytest.mark.e2e  # runs a generator over the whole API as a process
def test_a_new_stripe_list_added_by_the_recipe_appears_in_discovery(tmp_path):
    """docs/streams.md, "Add a Stripe table": a list in a newer `stripe` package, the generator,
    and the tap discovers it, with one generated class and its schema (here the installed
    package with one list more, through `--stripe-dir`)."""
    import importlib.util

    stripe = tmp_path / "stripe"
    shutil.copytree(next(iter(importlib.util.find_spec("stripe").submodule_search_locations)), stripe,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (stripe / "_widget.py").write_text(WIDGET)
    (stripe / "_widget_service.py").write_text(WIDGET_SERVICE)
    (stripe / "params" / "_widget_list_params.py").write_text(WIDGET_PARAMS)
    package = tmp_path / "pkg" / "tap_stripe"
    shutil.copytree(ROOT / "tap_stripe", package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--stripe-dir", str(stripe),
                    "--out", str(package)], check=True, capture_output=True)
    source = (package / "streams" / "generated.py").read_text()
    assert source.count("class WidgetsStream(CreatedWindowStream):") == 1
    assert 'retrieve_path = "/v1/widgets/{id}"' in source
    widgets = json.loads((package / "schemas" / "widgets.json").read_text())["properties"]
    assert widgets["created"] == {"format": "date-time", "type": ["string", "null"]}
    assert widgets["size"]["properties"]["width"]["type"] == ["integer", "null"]
    (tmp_path / "config.json").write_text(json.dumps({"api_key": SANDBOX_KEY}))
    discovered = subprocess.run([sys.executable, "-m", "tap_stripe", "--config", str(tmp_path / "config.json"),
                                 "--discover"], capture_output=True, text=True, cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(tmp_path / "pkg")})
    assert discovered.returncode == 0, discovered.stderr[-2000:]
    entry = next(s for s in json.loads(discovered.stdout)["streams"] if s["tap_stream_id"] == "widgets")
    assert {"id", "created", "colour", "metadata"} <= set(entry["schema"]["properties"])
    assert entry["replication_key"] == "created"
