"""Lean runs (issue #16): a run does the work of the streams it syncs, and the shortcuts taken
for that give exactly what the SDK's full paths give."""

from __future__ import annotations

import copy
import json
import random
import time

import orjson
import pytest
from conftest import SANDBOX_KEY
from singer_sdk.helpers._util import dump_json

from tap_stripe import sensitive
from tap_stripe.catalog import RawEntry, catalog_text, read_catalog
from tap_stripe.output.emitter import message_dict
from tap_stripe.output.records import rfc3339
from tap_stripe.tap import TapStripe


@pytest.fixture(scope="module")
def discovered() -> dict:
    return TapStripe(config={"api_key": SANDBOX_KEY}, validate_config=False).catalog_dict


def _selecting(catalog: dict, names: set[str]) -> dict:
    catalog = copy.deepcopy(catalog)
    for entry in catalog["streams"]:
        for meta in entry["metadata"]:
            if meta["breadcrumb"] == []:
                meta["metadata"]["selected"] = entry["tap_stream_id"] in names
    return catalog


def test_a_one_stream_run_builds_only_that_stream(discovered):
    tap = TapStripe(config={"api_key": SANDBOX_KEY}, catalog=_selecting(discovered, {"charges"}))
    assert [s.name for s in tap.selected_specs()] == ["charges"]
    assert tap.streams.built_streams.keys() == set()  # selection read from the catalog alone
    assert [m.stream_alias for m in tap.streams["charges"].stream_maps] == ["charges"]
    assert tap.streams.built_streams.keys() == {"charges"}
    assert set(tap.mapper.stream_maps) == {"charges"}  # maps registered for it alone
    assert tap.shapers["charges"].created_field == "created"
    assert tap.streams.built_streams.keys() == {"charges"}


def test_selection_read_from_raw_metadata_is_the_sdks(discovered):
    """Every way a catalog can say a stream is (not) selected, read from the raw entry (a
    dict, or a file's `RawEntry`) as the SDK reads it from the built stream."""
    catalog = copy.deepcopy(discovered)
    roots = [None, "missing", {"inclusion": "automatic", "selected": False},
             {"inclusion": "unsupported", "selected": True}, {"selected-by-default": True},
             {"selected-by-default": False}, {"selected": True}, {"selected": False}, {}]
    for i, entry in enumerate(catalog["streams"]):
        root = roots[i % len(roots)]
        if root is None:
            entry["metadata"] = []
        elif root == "missing":
            entry["metadata"] = [m for m in entry["metadata"] if m["breadcrumb"] != []]
        else:
            for meta in entry["metadata"]:
                if meta["breadcrumb"] == []:
                    meta["metadata"] = dict(root)
    names = [e["tap_stream_id"] for e in catalog["streams"]]
    text = json.dumps(catalog, indent=2).encode()
    from_file = read_catalog(text)
    assert all(isinstance(entry, RawEntry) for entry in from_file["streams"])
    sdk = TapStripe(config={"api_key": SANDBOX_KEY}, catalog=orjson.loads(text))
    expected = [n for n in names if sdk.streams[n].selected]
    for raw in (orjson.loads(text), from_file):
        tap = TapStripe(config={"api_key": SANDBOX_KEY}, catalog=raw)
        assert [s.name for s in tap.selected_specs()] == expected


def test_a_catalog_file_read_lazily_gives_the_same_streams(discovered):
    config = {"api_key": SANDBOX_KEY, "account_ids": ["acct_1", "acct_2"], "expand": {"charges": ["customer"]}}
    text = json.dumps(_selecting(discovered, {"charges", "invoices"})).encode()
    lazy = TapStripe(config=config, catalog=read_catalog(text))
    full = TapStripe(config=config, catalog=orjson.loads(text))
    for name in ("charges", "invoices"):
        a, b = lazy.streams[name], full.streams[name]
        assert a.schema == b.schema and list(a.primary_keys) == list(b.primary_keys) == ["_account_id", "id"]
        assert a.metadata.to_list() == b.metadata.to_list()
        assert [m.transformed_schema for m in a.stream_maps] == [m.transformed_schema for m in b.stream_maps]
    assert lazy.input_catalog.to_dict() == full.input_catalog.to_dict()


@pytest.mark.parametrize("text", [b"[1, 2", b"[]", b'{"streams": 3}', b'{"streams": [1]}', b"{}"])
def test_a_catalog_file_not_laid_out_as_expected_is_parsed_whole(text):
    result = read_catalog(text)
    assert result is None or result == orjson.loads(text)


def test_catalog_text_is_the_sdks(discovered):
    assert catalog_text(discovered) == dump_json(discovered, indent=2)
    odd = {"a": "x\x7fy—😀\"\\", "b": [], "c": {}, "d": [1, {"e": None, "f": True}], "h": -3,
           "s": "".join(chr(i) for i in range(300))}
    assert catalog_text(odd) == dump_json(odd, indent=2)
    for unsafe in ({"x": 1e-05}, {"x": [1.5]}, {"k": 'say "hi": now'}, {"k\\": 1}, {1: 2}, {"x": 10 ** 30}):
        assert catalog_text(unsafe) is None  # the SDK writes these


def test_schema_message_dict_is_the_sdks():
    tap = TapStripe(config={"api_key": SANDBOX_KEY})
    for name in ("charges", "invoices", "balance"):
        for message in tap.streams[name]._generate_schema_messages():
            assert orjson.dumps(message_dict(message)) == orjson.dumps(message.to_dict())


def test_rfc3339_is_strftime():
    values = [0, -1, -86399, -86400, -86401, 1767225600, 253402300799, 1.5, -1.5, True]
    rng = random.Random(7)
    values += [rng.randrange(-10 ** 10, 10 ** 10) for _ in range(20_000)]
    for value in values:
        assert rfc3339(value) == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value)), value


def test_a_protector_compiles_each_stream_when_asked_as_it_did_all_at_once():
    classification = sensitive.load_classification()
    setting = {"categories": {"contact": "hash", "address": "mask", "free_text": "drop"},
               "fields": {"charges.billing_details.name": "keep", "customers.phone": "drop"}}
    protector = sensitive.Protector.from_config(setting, "k", classification)
    assert protector is not None
    for stream in ("charges", "customers", "invoices", "no_such_stream"):
        paths = classification.get(stream, {})
        expected = {p: setting["categories"].get(c, "keep") for p, c in paths.items()}
        expected.update({k.partition(".")[2]: v for k, v in setting["fields"].items()
                         if k.partition(".")[0] == stream and paths})
        assert protector.policies(stream) == {p: v for p, v in expected.items() if v != "keep"}
    assert sensitive.Protector.from_config({"categories": {"contact": "keep"}}, None, classification) is None
