"""Every SDK capability the tap declares works (issue #15): schema flattening, BATCH messages
and the SDK's METRIC log lines, each through the command line against the sandbox."""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SANDBOX_KEY, TargetModel, catalog_for, comparable, expected_rows, tap_config
from singer_sdk.helpers._batch import StorageTarget
from singer_sdk.helpers._flattening import flatten_record

from tap_stripe.output.batch import STATE_DELAY_SECONDS, BatchWriter, batch_config
from tap_stripe.tap import SPECS

STREAMS = ["charges", "customers", "invoices", "invoice_line_items"]
DAY = 86400


def schemas_of(messages: list[dict]) -> dict[str, dict]:
    return {m["stream"]: m["schema"] for m in messages if m["type"] == "SCHEMA"}


def read_batch_file(url: str, encoding: dict) -> list[dict]:
    """A batch file's records, read the way an SDK target reads them (`Sink.process_batch_files`):
    the storage from the URL's head, gzip when the message says so. A truncated gzip raises."""
    head, tail = StorageTarget.split_url(url)
    with StorageTarget.from_url(head).open(tail, mode="rb") as handle:
        data = handle.read()
    if encoding.get("compression") == "gzip":
        data = gzip.decompress(data)
    assert data.endswith(b"\n"), f"{url} does not end with a complete line"
    return [json.loads(line) for line in data.splitlines()]


def unbatched(messages: list[dict], batch_size: int | None = None) -> list[dict]:
    """The messages with each BATCH replaced by the RECORD messages its files hold (with the
    BATCH's table version), so a TargetModel can apply them."""
    out = []
    for message in messages:
        if message["type"] != "BATCH":
            out.append(message)
            continue
        assert message["encoding"]["format"] == "jsonl"
        for url in message["manifest"]:
            records = read_batch_file(url, message["encoding"])
            assert records, f"{url} is empty"
            if batch_size:
                assert len(records) <= batch_size, f"{url} holds {len(records)} records > batch_size"
            out += [{"type": "RECORD", "stream": message["stream"], "record": r,
                     **({"version": message["version"]} if message.get("version") is not None else {})}
                    for r in records]
    return out


# ------------------------------------------------------------------------------ flattening
def _flatten_config(sandbox, path: str, depth: int, tmp_path: Path) -> dict:
    config = tap_config(sandbox, flattening_enabled=True, flattening_max_depth=depth)
    if path == "stream_map":  # the main thread: the SDK's stream map, then its flattening
        config["stream_maps"] = {"charges": {"amount_major": "amount / 100"}}
    if path == "batch":  # the main thread without stream maps: records handed over as dicts
        config["batch_config"] = {"encoding": {"format": "jsonl", "compression": "gzip"},
                                  "storage": {"root": (tmp_path / "batches").as_uri()}}
    return config


@pytest.mark.parametrize("path,depth", [("worker", 1), ("worker", 3), ("batch", 2), ("stream_map", 2)])
def test_records_are_flattened_as_the_schema_says(sandbox, run_tap, tmp_path, path, depth):
    """With flattening, every record's keys are the flattened SCHEMA's, and its values are what
    the SDK's own flattener makes of the record (nested objects joined with `__` down to
    `flattening_max_depth`, deeper objects and lists as JSON strings) — whether the record is
    finished in a worker (no stream maps) or on the main thread (stream maps, BATCH)."""
    config = _flatten_config(sandbox, path, depth, tmp_path)
    run = run_tap(config, catalog=catalog_for(STREAMS))
    assert run.returncode == 0, run.stderr
    schemas = schemas_of(run.messages)
    assert set(schemas) == set(STREAMS)
    messages = unbatched(run.messages)
    if path == "batch":
        assert not run.records(), "RECORD messages in a BATCH run"
    flattened_keys = 0
    for stream in STREAMS:
        properties = schemas[stream]["properties"]
        if stream == "charges":
            assert "billing_details" not in properties and "billing_details__email" in properties
        expected = expected_rows(sandbox, stream)
        records = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]
        assert len(records) == len(expected) > 0, stream
        for record in records:
            extra = set(record) - set(properties)
            assert not extra, f"{stream} {record['id']}: keys not in the flattened SCHEMA: {sorted(extra)[:5]}"
            assert not any(isinstance(v, (dict, list)) for v in record.values()), \
                f"{stream} {record['id']}: a nested value left in a flattened record"
            source = copy.deepcopy(expected[record["id"]])
            if path == "stream_map" and stream == "charges":
                source["amount_major"] = source["amount"] / 100
            # The SDK's flattener, restricted to the SCHEMA's keys (see tap_stripe.output.emitter._flattener:
            # an SDK tap drops fields its schema lacks before flattening, and the flattener adds
            # `key: null` for a null object whose columns are `key__*`).
            flat = flatten_record(source, flattened_schema=schemas[stream], max_level=depth)
            reference = json.loads(json.dumps({k: v for k, v in flat.items() if k in properties}))
            assert comparable(record) == comparable(reference), f"{stream} {record['id']} differs from the SDK's"
            flattened_keys += sum("__" in k for k in record)
    assert flattened_keys > 0
    if depth >= 2:
        assert "billing_details__address__city" in schemas["charges"]["properties"]


def test_sensitive_policies_apply_before_flattening(sandbox, run_tap):
    """Policies name nested paths; with flattening the SCHEMA carries them on the flattened
    names: a dropped nested field is not a column, a hashed integer one is a string column."""
    config = tap_config(sandbox, flattening_enabled=True, flattening_max_depth=3,
                        sensitive_hash_key="k" * 32,
                        sensitive_data={"fields": {"charges.billing_details.email": "drop",
                                                   "charges.payment_method_details.card.exp_month": "hash"}})
    run = run_tap(config, catalog=catalog_for(["charges"]))
    assert run.returncode == 0, run.stderr
    properties = schemas_of(run.messages)["charges"]["properties"]
    assert "billing_details__email" not in properties
    assert "billing_details__name" in properties
    assert properties["payment_method_details__card__exp_month"]["type"] == ["string", "null"]
    records = run.records("charges")
    assert records
    hashed = [r["payment_method_details__card__exp_month"] for r in records
              if r.get("payment_method_details__card__exp_month") is not None]
    assert hashed and all(isinstance(v, str) for v in hashed)
    for record in records:
        assert set(record) <= set(properties)
        assert "billing_details__email" not in record


# ------------------------------------------------------------------------------ BATCH
def _batch_config(sandbox, tmp_path: Path, compression: str, batch_size: int) -> dict:
    return tap_config(sandbox, lookback_seconds=60, batch_config={
        "encoding": {"format": "jsonl", "compression": compression},
        "storage": {"root": (tmp_path / "batches").as_uri(), "prefix": "run-"},
        "batch_size": batch_size})


def _created_bookmarks(state: dict) -> dict[str, int]:
    out = {}
    for stream, bookmark in state.get("bookmarks", {}).items():
        cursors = bookmark.get("accounts", {}).get("default", {})
        created = cursors.get("created")
        if cursors.get("resync"):
            created = cursors["resync"].get("created")
        if created is not None:
            out[stream] = created
    return out


def assert_states_follow_their_batches(sandbox, messages: list[dict], streams: list[str]) -> int:
    """Each STATE comes after the BATCH messages of every record it covers: every top-level
    object created before a stream's `created` cursor is in a file named before that STATE."""
    seen: dict[str, set] = {s: set() for s in streams}
    checked = 0
    for message in unbatched(messages):
        if message["type"] == "RECORD" and message["stream"] in seen:
            seen[message["stream"]].add(message["record"]["id"])
        elif message["type"] == "STATE":
            for stream, cursor in _created_bookmarks(message["value"]).items():
                if stream not in seen or SPECS[stream].parent:
                    continue
                field = SPECS[stream].created_field
                covered = {o["id"] for o in sandbox.truth(stream) if o.get(field, 0) < cursor}
                missing = covered - seen[stream]
                assert not missing, f"a STATE covers {stream} records no earlier BATCH holds: {sorted(missing)[:3]}"
                checked += len(covered)
    return checked


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_batch_files_hold_exactly_the_records(sandbox, run_tap, tmp_path, compression):
    """With batch_config: no RECORD messages, complete files of at most batch_size records
    named by BATCH messages, each before the STATE that covers it; a target reading the files
    (an initial run, then an incremental one with changes and deletions) holds the sandbox."""
    batch_size = 7
    config = _batch_config(sandbox, tmp_path, compression, batch_size)
    catalog = catalog_for(STREAMS)
    first = run_tap(config, catalog=catalog)
    assert first.returncode == 0, first.stderr
    sandbox.advance(DAY)
    charge = sandbox.truth("charges")[0]
    sandbox.update("charges", charge["id"], {"description": "changed after the first run"})
    new_ids = [sandbox.create("charges")["id"] for _ in range(3)]
    customers = sandbox.truth("customers")
    sandbox.delete("customers", customers[1]["id"])
    sandbox.update("customers", customers[0]["id"], {"email": "changed@example.com"})
    sandbox.advance(60)
    second = run_tap(config, catalog=catalog, state=first.last_state)
    assert second.returncode == 0, second.stderr

    suffix = ".json.gz" if compression == "gzip" else ".jsonl"
    named = []
    for run in (first, second):
        assert not run.records(), "RECORD messages written for batched streams"
        batches = [m for m in run.messages if m["type"] == "BATCH"]
        assert batches
        if run is first:
            assert {m["stream"] for m in batches} == set(STREAMS)
        assert all(m["encoding"] == {"format": "jsonl", "compression": compression} for m in batches)
        named += [url for m in batches for url in m["manifest"]]
        kinds = [m["type"] for m in run.messages]
        assert kinds[-1] == "STATE" and kinds.index("STATE") > kinds.index("SCHEMA")
        last_batch = max(i for i, k in enumerate(kinds) if k == "BATCH")
        assert "STATE" in kinds[last_batch:], "no STATE after the last BATCH"
    # Every file is named once and there is no other file (nothing half-written left behind).
    on_disk = sorted(p.as_uri() for p in (tmp_path / "batches").iterdir())
    assert sorted(named) == on_disk and len(set(named)) == len(named)
    assert all(Path(u).name.startswith("run-tap-stripe--") and u.endswith(suffix) for u in named)
    # Files of at most batch_size records: more than one file per stream.
    assert len([u for u in named if "--charges-" in u]) >= 2

    model = TargetModel().apply(unbatched(first.messages, batch_size))
    assert assert_states_follow_their_batches(sandbox, first.messages, STREAMS) > 0
    model.apply(unbatched(second.messages, batch_size))
    for stream in STREAMS:
        expected = expected_rows(sandbox, stream)
        got = model.rows(stream)
        assert set(got) == set(expected), stream
        for key, record in expected.items():
            assert comparable(got[key]) == comparable(record), f"{stream} {key} differs"
    assert customers[1]["id"] not in model.rows("customers")
    assert set(new_ids) <= set(model.rows("charges"))
    assert model.rows("charges")[charge["id"]]["description"] == "changed after the first run"


class _Out:
    def __init__(self):
        self.messages: list[dict] = []

    def message(self, message: dict) -> None:
        self.messages.append(json.loads(json.dumps(message)))

    def flush(self) -> None:
        pass


def test_batch_writer_writes_state_only_after_the_files_it_covers(tmp_path):
    """The writer, message by message: a STATE waits until every file holding a record written
    before it is complete and named by a BATCH message; batch_size, any other message, the
    end of the run and (at the latest) STATE_DELAY_SECONDS close files."""
    now = [1000.0]
    out = _Out()
    config = batch_config({"encoding": {"format": "jsonl", "compression": "gzip"},
                           "storage": {"root": (tmp_path / "b").as_uri()}, "batch_size": 3})
    writer = BatchWriter(out, config, "tap-stripe", clock=lambda: now[0])
    sent: list[tuple[str, dict]] = []  # what the engine wrote, in order

    def record(stream, n, version=None):
        rec = {"id": f"{stream}{n}"}
        sent.append(("RECORD", rec))
        writer.record(stream, rec, "2026-01-01T00:00:00Z", version)

    def message(msg):
        sent.append((msg["type"], msg))
        writer.message(msg)

    record("a", 1)
    record("a", 2)
    record("b", 1)
    message({"type": "STATE", "value": {"n": 1}})
    assert out.messages == [], "a STATE went out while the files of its records were open"
    record("a", 3)  # a's file is full: its BATCH goes out; b's file still holds b1
    assert [m["type"] for m in out.messages] == ["BATCH"]
    record("b", 2)
    record("a", 4)
    message({"type": "STATE", "value": {"n": 2}})  # replaces the held one
    assert [m["type"] for m in out.messages] == ["BATCH"]
    now[0] += STATE_DELAY_SECONDS
    message({"type": "STATE", "value": {"n": 3}})  # held too long: the open files are closed
    assert [m["type"] for m in out.messages] == ["BATCH", "BATCH", "BATCH", "STATE"]
    assert out.messages[-1]["value"] == {"n": 3}
    message({"type": "STATE", "value": {"n": 4}})  # no open file: straight out
    assert out.messages[-1]["value"] == {"n": 4}
    record("c", 1, version=5)
    record("c", 2, version=6)  # another table version: another file
    message({"type": "ACTIVATE_VERSION", "stream": "c", "version": 6})
    assert [m["type"] for m in out.messages[-3:]] == ["BATCH", "BATCH", "ACTIVATE_VERSION"]
    assert [m.get("version") for m in out.messages[-3:-1]] == [5, 6]
    record("a", 5)
    message({"type": "STATE", "value": {"n": 5}})
    writer.flush()  # the run's end
    assert [m["type"] for m in out.messages[-2:]] == ["BATCH", "STATE"]

    # Replay: at each STATE, every record written before it is in a file named before it.
    records_before = []
    expected_states = iter(m for kind, m in sent if kind == "STATE")
    batched: set[str] = set()
    position = {id(m): i for i, (_, m) in enumerate(sent)}
    for out_message in out.messages:
        if out_message["type"] == "BATCH":
            for url in out_message["manifest"]:
                batched |= {r["id"] for r in read_batch_file(url, out_message["encoding"])}
        elif out_message["type"] == "STATE":
            state = next(s for s in expected_states if s["value"] == out_message["value"])
            records_before = {m["id"] for kind, m in sent[:position[id(state)]] if kind == "RECORD"}
            assert records_before <= batched, f"STATE {state['value']} before {sorted(records_before - batched)}"
    assert batched == {m["id"] for kind, m in sent if kind == "RECORD"}
    files = sorted((tmp_path / "b").iterdir())
    assert len(files) == len([m for m in out.messages if m["type"] == "BATCH"]) == 6
    assert all(len(read_batch_file(f.as_uri(), {"compression": "gzip"})) <= 3 for f in files)


def test_parquet_is_refused_and_about_offers_only_jsonl(sandbox, run_tap, tmp_path):
    """The tap declares the `batch` capability with the one encoding it writes: parquet (which
    needs pyarrow) is refused with a setting error, not silently ignored."""
    config = tap_config(sandbox, batch_config={"encoding": {"format": "parquet"},
                                               "storage": {"root": (tmp_path / "b").as_uri()}})
    run = run_tap(config, catalog=catalog_for(["charges"]))
    assert run.returncode == 1
    assert "batch_config.encoding.format" in run.stderr and "parquet" in run.stderr
    assert not run.messages
    info = json.loads(subprocess.run([sys.executable, "-m", "tap_stripe", "--about", "--format", "json"],
                                     capture_output=True, text=True, check=True).stdout)
    assert {"batch", "schema-flattening", "stream-maps"} <= set(info["capabilities"])
    encoding = info["settings"]["properties"]["batch_config"]["properties"]["encoding"]["properties"]
    assert encoding["format"]["enum"] == ["jsonl"]


# ------------------------------------------------------------------------------ METRIC lines
def metric_points(stderr: str) -> list[dict]:
    return [json.loads(line.split("METRIC: ", 1)[1]) for line in stderr.splitlines() if "METRIC: " in line]


def test_metric_lines_count_what_was_written(sandbox, run_tap, tmp_path):
    """The SDK's METRIC lines on stderr (singer_sdk.metrics, INFO): record_count per stream
    adding up to the RECORD messages written, one http_request_duration per response (retried
    ones too) tagged with its stream, endpoint and status, a sync_duration per stream, and no
    secret anywhere. TAP_STRIPE_LOGLEVEL=WARNING silences them, as in any SDK tap."""
    sandbox.add_fault("/v1/charges", "500", count=2)
    summary_path = tmp_path / "summary.json"
    config = tap_config(sandbox, summary_file=str(summary_path))
    run = run_tap(config, catalog=catalog_for(STREAMS), env={"TAP_STRIPE_LOGLEVEL": "INFO"})
    assert run.returncode == 0, run.stderr
    points = metric_points(run.stderr)
    assert SANDBOX_KEY not in run.stderr and "Bearer" not in run.stderr
    counted: dict[str, int] = {}
    for p in points:
        if p["metric"] == "record_count":
            assert p["type"] == "counter" and isinstance(p["tags"]["pid"], int)
            counted[p["tags"]["stream"]] = counted.get(p["tags"]["stream"], 0) + p["value"]
    written = {s: len(run.records(s)) for s in STREAMS}
    assert counted == written and all(written.values())

    summary = json.loads(summary_path.read_text())
    http = [p for p in points if p["metric"] == "http_request_duration"]
    for p in http:
        assert p["type"] == "timer" and p["value"] >= 0
        assert p["tags"]["endpoint"].startswith("/v1/")
        assert p["tags"]["status"] == ("succeeded" if p["tags"]["http_status_code"] < 400 else "failed")
        assert set(p["tags"]) <= {"stream", "endpoint", "http_status_code", "status", "context"}
    per_stream = {s: sum(1 for p in http if p["tags"].get("stream") == s) for s in STREAMS}
    assert per_stream == {s: summary["streams"][s]["requests"] for s in STREAMS}
    failed = [p for p in http if p["tags"].get("stream") == "charges" and p["tags"]["http_status_code"] == 500]
    assert len(failed) == 2 and all(p["tags"]["endpoint"] == "/v1/charges" for p in failed)
    durations = {p["tags"]["stream"]: p for p in points if p["metric"] == "sync_duration"}
    assert set(durations) == set(STREAMS) and all(p["tags"]["status"] == "succeeded" for p in durations.values())

    silent = run_tap(config, catalog=catalog_for(STREAMS), env={"TAP_STRIPE_LOGLEVEL": "WARNING"})
    assert silent.returncode == 0, silent.stderr
    assert not metric_points(silent.stderr) and silent.records("charges")


def test_a_batch_file_that_cannot_be_written_stops_the_run_without_state(sandbox, run_tap, tmp_path):
    """Storage that refuses the files: the run fails with one line naming the file, and no
    STATE or ACTIVATE_VERSION goes out after records that were lost."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the batch root should be")
    config = tap_config(sandbox, batch_config={"encoding": {"format": "jsonl"},
                                               "storage": {"root": (blocker / "batches").as_uri()}})
    run = run_tap(config, catalog=catalog_for(STREAMS))
    assert run.returncode == 1
    assert "could not write the batch file" in run.stderr and "Traceback" not in run.stderr
    kinds = [m["type"] for m in run.messages]
    assert "RECORD" not in kinds and "BATCH" not in kinds and "ACTIVATE_VERSION" not in kinds
    assert all(not _created_bookmarks(m["value"]) for m in run.messages if m["type"] == "STATE")
