"""A plain singer-sdk tap of Stripe charges with the SDK's defaults: the comparison point of
`cpu_per_record.py`.

What a first singer-sdk tap of the stream looks like, with no tuning: `RESTStream`,
`BearerTokenAuthenticator`, `records_jsonpath = "$.data[*]"`, a `has_more`/`starting_after`
paginator that reads the page with `response.json()`, the tap's own
`tap_stripe/schemas/charges.json` schema, default type conformance, the default
simplejson writer, sequential requests. Its only setting beyond `api_key`/`api_url` is
`expand` (the same list the tap's `expand` takes for charges), so both taps read the same
~3 KB objects.

  .venv/bin/python benchmarks/sdk_default_tap.py --config config.json > out.jsonl
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from singer_sdk import Tap
from singer_sdk import typing as th
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import BaseAPIPaginator
from singer_sdk.streams import RESTStream

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "tap_stripe" / "schemas" / "charges.json"


class StripeCursorPaginator(BaseAPIPaginator):
    """`starting_after=<last id>` while the page says `has_more`."""

    def __init__(self) -> None:
        super().__init__(None)

    def has_more(self, response) -> bool:
        return bool(response.json().get("has_more"))

    def get_next(self, response) -> str | None:
        data = response.json().get("data") or []
        return data[-1]["id"] if data else None


class ChargesStream(RESTStream):
    name = "charges"
    path = "/v1/charges"
    primary_keys = ("id",)
    # No replication key: the tap's schema declares `created` as a date-time string (the tap
    # converts Stripe's epoch integers), and the SDK's signpost check then fails comparing the
    # raw integer with a string. A plain full-table stream is the honest "defaults" baseline.
    records_jsonpath = "$.data[*]"
    schema_filepath = SCHEMA_PATH

    @property
    def url_base(self) -> str:
        return self.config.get("api_url", "https://api.stripe.com")

    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self.config["api_key"])

    def get_new_paginator(self) -> StripeCursorPaginator:
        return StripeCursorPaginator()

    def get_url_params(self, context: dict | None, next_page_token: Any | None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": 100}
        if next_page_token:
            params["starting_after"] = next_page_token
        expand = (self.config.get("expand") or {}).get("charges")
        if expand:
            params["expand[]"] = [f"data.{field}" for field in expand]
        return params


class TapStripeSDKDefault(Tap):
    name = "tap-stripe-sdk-default"
    config_jsonschema = th.PropertiesList(
        th.Property("api_key", th.StringType, required=True, secret=True),
        th.Property("api_url", th.StringType, default="https://api.stripe.com"),
        th.Property("expand", th.ObjectType(additional_properties=th.ArrayType(th.StringType))),
    ).to_dict()

    def discover_streams(self) -> list[RESTStream]:
        return [ChargesStream(self)]


if __name__ == "__main__":
    TapStripeSDKDefault.cli()
