"""Schema evolution: fields newer than a stream's schema reach the target, after an updated SCHEMA."""

from __future__ import annotations

import json
import random
import threading
from itertools import pairwise

import jsonschema
import pytest
from conftest import SANDBOX_NOW, catalog_for, tap_config

from tap_stripe.output.evolution import FieldPolicy, SchemaEvolution, json_type, scrubbed, type_list

KNOWN = frozenset({"id", "object", "created", "email", "_account_id", "_updated_at"})


def evolution(policy: FieldPolicy | None = None, rebuilds: list | None = None) -> SchemaEvolution:
    calls = rebuilds if rebuilds is not None else []

    def rebuild(stream: str, properties: dict) -> list[dict]:
        calls.append((stream, json.loads(json.dumps(properties))))
        return [{"type": "SCHEMA", "stream": stream, "schema": {"properties": properties}}]

    return SchemaEvolution({"widgets"}, lambda name: KNOWN, rebuild, policy)


def accepts(node: dict, value) -> bool:
    return jsonschema.Draft7Validator(node).is_valid(value)


# ------------------------------------------------------------------------------ unit: types and admission
def test_types_are_inferred_nullable_and_widen():
    assert [json_type(v) for v in (True, 1, 1.5, "s", {}, [], None)] == \
        ["boolean", "integer", "number", "string", "object", "array", "null"]
    assert type_list({"integer", "number"}) == ["number", "null"]
    evo = evolution()
    assert evo.admit("widgets", {"id": "w1", "count": 3}) == 1
    assert evo.added("widgets") == {"count": {"type": ["integer", "null"]}}
    assert evo.admit("widgets", {"id": "w2", "count": 4}) == 1  # accepted since revision 1
    assert evo.admit("widgets", {"id": "w3", "count": 4.5}) == 2  # widened
    assert evo.admit("widgets", {"id": "w4", "count": 5}) == 1  # an integer still fits revision 1
    assert evo.admit("widgets", {"id": "w5", "count": "many"}) == 3
    assert evo.added("widgets")["count"] == {"type": ["number", "string", "null"]}
    assert evo.admit("widgets", {"id": "w6", "tags": [], "blob": {"a": 1}}) == 4
    assert evo.added("widgets")["tags"] == {"type": ["array", "null"], "items": {}}
    assert evo.added("widgets")["blob"] == {"type": ["object", "null"]}  # opaque: any keys
    assert evo.admit("widgets", {"id": "w7", "tags": ["a", 2]}) == 5
    assert evo.added("widgets")["tags"]["items"] == {"type": ["integer", "string", "null"]}
    assert evo.admit("widgets", {"id": "w8", "tags": None, "count": None}) == 4  # null: when the field came
    assert evo.admit("widgets", {"id": "w9", "email": "a@b.c"}) == 0  # in the schema: nothing to do
    assert evo.admit("other", {"id": "x", "new": 1}) == 0  # a stream that does not evolve


def test_a_field_first_seen_null_waits_for_a_value():
    evo = evolution()
    record = {"id": "w1", "later": None}
    assert evo.admit("widgets", record) == 0 and record == {"id": "w1"}
    record = {"id": "w2", "later": True}
    assert evo.admit("widgets", record) == 1 and record["later"] is True


def test_secrets_and_non_field_names_are_never_added():
    notes = []
    evo = evolution()
    evo.note = lambda stream, text: notes.append(text)
    record = {"id": "w1", "client_secret": "pi_secret_x", "webhook_secret": "whsec", "owner.customer": "cus_1",
              "details": {"ok": 1, "api_key": "sk_live_x", "nested": [{"password": "p", "keep": 2}]}}
    shared = record["details"]
    assert evo.admit("widgets", record) == 1
    assert record == {"id": "w1", "details": {"ok": 1, "nested": [{"keep": 2}]}}
    assert shared["api_key"] == "sk_live_x", "nested values are copied, never changed (records share them)"
    assert set(evo.added("widgets")) == {"details"}
    assert sum("looks like a secret" in n for n in notes) == 2 and any("not a field name" in n for n in notes)
    assert scrubbed({"a": 1}) == {"a": 1}


def test_new_fields_follow_the_sensitive_data_categories():
    policy = FieldPolicy({"categories": {"contact": "hash", "network": "drop"}}, "key",
                         lambda stream: {"nickname": "mask"})
    evo = evolution(policy)
    record = {"id": "w1", "backup_email": "Jane@Example.com", "client_ip": "10.0.0.1", "nickname": "Jane",
              "color": "red"}
    assert evo.admit("widgets", record) == 1
    assert record["backup_email"].startswith("h1:") and "client_ip" not in record
    assert record["nickname"] == "Jane", "a field rule's policy is applied with the stream's other rules"
    assert record["color"] == "red"
    assert evo.added("widgets")["backup_email"] == {"type": ["string", "null"]}  # typed as written: a hash


def test_concurrent_admission_publishes_before_any_record_needs_it():
    """Whatever the threads' interleaving, a record's revision is published (its SCHEMA and
    output built) before admit returns it, and that schema accepts the record."""
    rebuilds: list = []
    evo = evolution(rebuilds=rebuilds)
    values = [1, 2.5, "s", True, {"k": 1}, [1], ["x", None], None]
    failures = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(300):
            record = {"id": f"w{seed}-{i}"}
            for n in rng.sample(range(6), 2):
                record[f"f{n}"] = rng.choice(values)
            need = evo.admit("widgets", record)
            revision, messages = evo.streams["widgets"].published
            properties = messages[0]["schema"]["properties"] if messages else {}
            if revision < need:
                failures.append(f"revision {need} returned, {revision} published")
            for key, value in record.items():
                if key in KNOWN:
                    continue
                if key not in properties or not accepts(properties[key], value):
                    failures.append(f"{key}={value!r} not accepted by {properties.get(key)}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:5]
    # Rebuilds came in revision order, each schema wider than the one before.
    for (_, before), (_, after) in pairwise(rebuilds):
        assert set(before) <= set(after)
        for key, node in before.items():
            assert set(node["type"]) <= set(after[key]["type"]) or "number" in after[key]["type"]


# ------------------------------------------------------------------------------ through the CLI
def schema_checked(messages: list[dict], stream: str) -> dict[str, dict]:
    """Assert that every RECORD of `stream` has only fields of the stream's last SCHEMA before
    it, with values that SCHEMA accepts (for the fields the first SCHEMA lacked); return the
    fields added over the run, with their last schema."""
    first = current = None
    for message in messages:
        if message.get("stream") != stream:
            continue
        if message["type"] == "SCHEMA":
            current = message["schema"]["properties"]
            first = first or current
        elif message["type"] == "RECORD":
            assert current is not None, "RECORD before any SCHEMA"
            for key, value in message["record"].items():
                assert key in current, f"{key} written before a SCHEMA that has it"
                if key not in first:
                    assert accepts(current[key], value), f"{key}={value!r} does not fit {current[key]}"
    return {k: v for k, v in (current or {}).items() if k not in (first or {})}


def test_a_new_field_reaches_the_target_after_an_updated_schema(sandbox, run_tap, tmp_path):
    charges = sorted(sandbox.truth("charges"), key=lambda c: c["created"])
    older, newer = charges[5]["id"], charges[-3]["id"]
    sandbox.update("charges", older, {"risk_score_v2": 42, "network_details": {"scheme": "x", "client_secret": "s"},
                                      "webhook_secret": "whsec_x"})
    sandbox.update("charges", newer, {"risk_score_v2": "elevated"})
    catalog = catalog_for(["charges"])
    summary = tmp_path / "summary.json"
    config = tap_config(sandbox, summary_file=str(summary))
    run = run_tap(config, catalog=catalog)
    assert run.returncode == 0, run.stderr
    added = schema_checked(run.messages, "charges")
    assert added == {"risk_score_v2": {"type": ["integer", "string", "null"]},
                     "network_details": {"type": ["object", "null"]}}
    records = {r["id"]: r for r in run.records("charges")}
    assert records[older]["risk_score_v2"] == 42 and records[newer]["risk_score_v2"] == "elevated"
    assert records[older]["network_details"] == {"scheme": "x"}
    assert not any("webhook_secret" in r for r in records.values())
    schemas = [i for i, m in enumerate(run.messages) if m["type"] == "SCHEMA" and m["stream"] == "charges"]
    first_with = min(i for i, m in enumerate(run.messages) if m["type"] == "RECORD" and "risk_score_v2" in m["record"])
    assert len(schemas) == 2 and schemas[1] < first_with
    notes = json.loads(summary.read_text())["streams"]["charges"]["notes"]
    assert any("added field" in n and "risk_score_v2" in n and "to stream charges" in n for n in notes), notes
    assert any("webhook_secret" in n and "secret" in n for n in notes), notes

    # Next run: a change through events brings a newer field; the fields added before are
    # announced again before the records that have them.
    sandbox.advance(3600)
    new = [sandbox.create("charges")["id"] for _ in range(2)]  # written (window) before the events
    sandbox.update("charges", charges[10]["id"], {"late_flag": True})
    sandbox.advance(60)  # the run reads events before its start
    second = run_tap(config, catalog=catalog, state=run.last_state)
    assert second.returncode == 0, second.stderr
    assert "late_flag" in schema_checked(second.messages, "charges")
    updated = [r for r in second.records("charges") if r["id"] == charges[10]["id"]]
    assert updated and updated[-1]["late_flag"] is True
    # The updated SCHEMA came mid-stream: after the new charges' records, before the change's.
    kinds = [m["type"] if m["type"] != "RECORD" else m["record"]["id"] for m in second.messages
             if m.get("stream") == "charges"]
    assert kinds.index("SCHEMA", 1) > max(kinds.index(i) for i in new)


def test_with_schema_evolution_off_new_fields_are_dropped(sandbox, run_tap):
    charge = sandbox.truth("charges")[3]["id"]
    sandbox.update("charges", charge, {"risk_score_v2": 42})
    run = run_tap(tap_config(sandbox, schema_evolution=False), catalog=catalog_for(["charges"]))
    assert run.returncode == 0, run.stderr
    assert not any("risk_score_v2" in r for r in run.records("charges"))
    assert [m["stream"] for m in run.messages if m["type"] == "SCHEMA"] == ["charges"]


@pytest.mark.parametrize("settings", [{}, {"flattening_enabled": True, "flattening_max_depth": 1},
                                      {"stream_maps": {"charges": {"amount_x2": "amount * 2"}}}],
                         ids=["records", "flattened", "stream-maps"])
def test_the_schema_precedes_every_record_with_the_field_across_windows_and_workers(run_tap, settings):
    """Fields and type changes spread over many windows fetched concurrently (newer windows
    are often rendered before older ones): each record comes after a SCHEMA that has its
    fields and accepts their values."""
    from stripe_sandbox import Sandbox

    with Sandbox(seed=5, now=SANDBOX_NOW, history_days=30, latency_ms=30, volumes={"charges": 3000}) as sb:
        charges = sorted(sb.truth("charges"), key=lambda c: c["created"])
        marked = {}
        for n, charge in enumerate(charges[::120]):
            fields = {"evolving": n if n < 12 else f"v{n}", f"only_{n % 4}": {"n": n}, "tags": [n] if n % 2 else []}
            sb.update("charges", charge["id"], fields)
            marked[charge["id"]] = fields
        run = run_tap(tap_config(sb, max_workers=4, **settings), catalog=catalog_for(["charges"]))
    assert run.returncode == 0, run.stderr
    added = schema_checked(run.messages, "charges")
    assert {"evolving", "only_0", "only_3", "tags"} <= set(added), run.stderr[-3000:]
    records = {r["id"]: r for r in run.records("charges")}
    assert len(records) == 3000
    flattened = "flattening_enabled" in settings
    for charge_id, fields in marked.items():
        for key, value in fields.items():
            got = records[charge_id][key]
            assert got == (json.dumps(value, separators=(",", ":")) if flattened and type(value) in (dict, list)
                           else value)
        if "stream_maps" in settings:
            assert records[charge_id]["amount_x2"] == 2 * records[charge_id]["amount"]
    windows = {(r["query"].split("created%5Bgte%5D=")[1].split("&")[0]) for r in sb.requests
               if r["path"] == "/v1/charges"}
    assert len(windows) > 3, "the run should have read several windows"


def test_a_field_the_output_cannot_take_is_left_out_not_fatal():
    notes = []

    def rebuild(stream: str, properties: dict) -> list[dict]:
        if "a__b" in properties:  # e.g. the SDK's flattener: a column `a__b` exists already
            raise ValueError("Duplicate column name produced in schema: a__b")
        return [{"type": "SCHEMA", "stream": stream, "schema": {"properties": properties}}]

    evo = SchemaEvolution({"widgets"}, lambda name: KNOWN, rebuild, note=lambda s, text: notes.append(text))
    record = {"id": "w1", "a__b": 1}
    assert evo.admit("widgets", record) == 0 and record == {"id": "w1"}
    record = {"id": "w2", "a__b": 2, "fine": 3}
    assert evo.admit("widgets", record) == 1 and record == {"id": "w2", "fine": 3}
    assert any("a__b" in n and "Duplicate column" in n for n in notes)


def test_new_fields_take_the_sensitive_data_policies_and_flattening(sandbox, run_tap):
    charge = sandbox.truth("charges")[4]["id"]
    sandbox.update("charges", charge, {"backup_email": "Jane.Doe@Example.com", "device_ip": "10.1.2.3",
                                       "partner": {"name": "Acme", "tier": 2}, "nickname": "JD"})
    settings = {"sensitive_data": {"categories": {"contact": "hash"}, "fields": {"charges.nickname": "drop"}},
                "sensitive_hash_key": "secret-key", "flattening_enabled": True, "flattening_max_depth": 1}
    run = run_tap(tap_config(sandbox, **settings), catalog=catalog_for(["charges"]))
    assert run.returncode == 0, run.stderr
    added = schema_checked(run.messages, "charges")
    assert added == {"backup_email": {"type": ["string", "null"]}, "device_ip": {"type": ["string", "null"]},
                     "partner": {"type": ["string", "null"]}}  # flattened: the object is one JSON column
    record = next(r for r in run.records("charges") if r["id"] == charge)
    assert record["backup_email"].startswith("h1:") and "Jane" not in json.dumps(record)
    assert record["partner"] == '{"name":"Acme","tier":2}' and "nickname" not in record
    assert "billing_details__email" in run.messages[0]["schema"]["properties"]  # the SCHEMA is flattened
