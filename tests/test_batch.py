"""The batch writer's holding of STATE (`BatchWriter`), message by message, in-process: a STATE
goes out only after the BATCH messages of every file open when it arrived, at the latest
STATE_DELAY_SECONDS after the first one held; after a file could not be written no STATE nor
ACTIVATE_VERSION goes out. (The end-to-end check is in test_sdk_capabilities.py.)"""

from __future__ import annotations

import gzip

import orjson
import pytest

from tap_stripe.errors import FatalRunError
from tap_stripe.output.batch import STATE_DELAY_SECONDS, BatchWriter, batch_config


class Out:
    def __init__(self):
        self.messages: list[dict] = []
        self.flushed = 0

    def message(self, message: dict) -> None:
        self.messages.append(message)

    def flush(self) -> None:
        self.flushed += 1


def writer_in(tmp_path, batch_size=3, compression="none", root=None):
    now = [1_000.0]
    out = Out()
    config = batch_config({"encoding": {"format": "jsonl", "compression": compression},
                           "storage": {"root": root or (tmp_path / "b").as_uri()}, "batch_size": batch_size})
    return BatchWriter(out, config, "tap-stripe", clock=lambda: now[0]), out, now


def kinds(out):
    return [m["type"] if m["type"] != "STATE" else f"STATE {m['value']}" for m in out.messages]


def state(n):
    return {"type": "STATE", "value": n}


def test_a_state_without_open_files_goes_straight_out(tmp_path):
    writer, out, _ = writer_in(tmp_path)
    writer.message(state(1))
    assert kinds(out) == ["STATE 1"]


def test_a_held_state_goes_out_once_the_files_open_when_it_arrived_are_complete(tmp_path):
    writer, out, _ = writer_in(tmp_path, batch_size=2)
    writer.record("a", {"id": "a1"}, "t")
    writer.record("b", {"id": "b1"}, "t")
    writer.message(state(1))
    assert kinds(out) == []
    writer.record("c", {"id": "c1"}, "t")  # opened after the STATE: not waited for
    writer.record("a", {"id": "a2"}, "t")  # a full: its BATCH
    assert kinds(out) == ["BATCH"]
    writer.record("b", {"id": "b2"}, "t")  # b full: the STATE's last file
    assert kinds(out) == ["BATCH", "BATCH", "STATE 1"]
    assert [m["stream"] for m in out.messages[:2]] == ["a", "b"]
    writer.record("c", {"id": "c2"}, "t")
    assert kinds(out) == ["BATCH", "BATCH", "STATE 1", "BATCH"]
    assert writer.batches == 3 and writer.files == {}


def test_a_newer_state_replaces_the_held_one_and_waits_for_the_files_open_now(tmp_path):
    writer, out, _ = writer_in(tmp_path, batch_size=2)
    writer.record("a", {"id": "a1"}, "t")
    writer.message(state(1))
    writer.record("b", {"id": "b1"}, "t")
    writer.message(state(2))  # waits for a and b
    writer.record("a", {"id": "a2"}, "t")
    assert kinds(out) == ["BATCH"]
    writer.record("b", {"id": "b2"}, "t")
    assert kinds(out) == ["BATCH", "BATCH", "STATE 2"]


def test_a_state_held_too_long_closes_the_open_files(tmp_path):
    writer, out, now = writer_in(tmp_path, batch_size=100)
    writer.record("a", {"id": "a1"}, "t")
    writer.message(state(1))
    now[0] += STATE_DELAY_SECONDS - 0.5
    writer.record("a", {"id": "a2"}, "t")
    writer.message(state(2))  # counted from the first STATE held
    assert kinds(out) == []
    now[0] += 0.5
    writer.message(state(3))
    assert kinds(out) == ["BATCH", "STATE 3"]
    # the next one held counts from its own arrival
    writer.record("a", {"id": "a3"}, "t")
    writer.message(state(4))
    now[0] += STATE_DELAY_SECONDS - 0.5
    writer.message(state(5))
    assert kinds(out) == ["BATCH", "STATE 3"]
    # a STATE with no file open resets the clock as well
    writer.flush()
    assert kinds(out)[-2:] == ["BATCH", "STATE 5"] and out.flushed == 1
    writer.message(state(6))
    writer.record("a", {"id": "a4"}, "t")
    now[0] += STATE_DELAY_SECONDS
    writer.message(state(7))
    assert kinds(out)[-1] == "STATE 6"
    now[0] += STATE_DELAY_SECONDS
    writer.message(state(8))
    assert kinds(out)[-2:] == ["BATCH", "STATE 8"]


def test_a_state_after_a_lone_state_without_files_is_not_held_by_an_old_clock(tmp_path):
    writer, out, now = writer_in(tmp_path, batch_size=100)
    writer.record("a", {"id": "a1"}, "t")
    writer.message(state(1))
    writer.close_all()
    assert kinds(out) == ["BATCH", "STATE 1"]
    now[0] += STATE_DELAY_SECONDS
    writer.record("a", {"id": "a2"}, "t")
    writer.message(state(2))  # held from now on, not from the first one
    assert kinds(out) == ["BATCH", "STATE 1"]


def test_any_other_message_closes_the_files_first_and_releases_a_held_state(tmp_path):
    writer, out, _ = writer_in(tmp_path, batch_size=100)
    writer.record("a", {"id": "a1"}, "t", version=5)
    writer.record("a", {"id": "a2"}, "t", version=6)
    writer.message(state(1))
    writer.message({"type": "ACTIVATE_VERSION", "stream": "a", "version": 6})
    assert kinds(out) == ["BATCH", "BATCH", "STATE 1", "ACTIVATE_VERSION"]
    assert [m["version"] for m in out.messages[:2]] == [5, 6]
    writer.message(state(2))
    assert kinds(out)[-1] == "STATE 2"


def test_a_batch_message_names_a_complete_file_of_its_stream(tmp_path):
    writer, out, _ = writer_in(tmp_path, batch_size=2, compression="gzip")
    writer.record("a", {"id": "a1"}, "t")
    writer.record("a", {"id": "a2"}, "t")
    (batch,) = out.messages
    assert batch["stream"] == "a" and batch["encoding"] == {"format": "jsonl", "compression": "gzip"}
    (url,) = batch["manifest"]
    assert url.startswith((tmp_path / "b").as_uri()) and url.endswith("-1.json.gz")
    with open(url.removeprefix("file://"), "rb") as handle:
        assert [orjson.loads(line) for line in gzip.decompress(handle.read()).splitlines()] == \
            [{"id": "a1"}, {"id": "a2"}]


def test_a_file_that_cannot_be_written_stops_every_later_state(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer, out, _ = writer_in(tmp_path, batch_size=100, root=(blocker / "batches").as_uri())
    writer.record("a", {"id": "a1"}, "t")
    writer.message(state(1))
    with pytest.raises(FatalRunError) as raised:
        writer.close_all()
    assert str(raised.value).startswith(f"could not write the batch file {(blocker / 'batches').as_uri()}/")
    assert str(raised.value).endswith("; no further state was written")
    assert writer.broken and out.messages == []
    writer.message(state(2))
    writer.message({"type": "ACTIVATE_VERSION", "stream": "a", "version": 1})
    writer.message({"type": "SCHEMA", "stream": "a"})
    assert kinds(out) == ["SCHEMA"]
    writer._held = state(3)
    writer._release()
    assert kinds(out) == ["SCHEMA"]


def test_a_state_let_through_leaves_nothing_held(tmp_path):
    writer, out, _ = writer_in(tmp_path, batch_size=2)
    writer.message(state(1))
    writer.record("a", {"id": "a1"}, "t")
    writer.record("a", {"id": "a2"}, "t")
    writer.flush()
    assert kinds(out) == ["STATE 1", "BATCH"]


def test_report_amounts_are_written_exactly(tmp_path):
    from decimal import Decimal

    writer, out, _ = writer_in(tmp_path, batch_size=1)
    writer.record("a", {"id": "a1", "amount": Decimal("12.30")}, "t")
    with open(out.messages[0]["manifest"][0].removeprefix("file://"), "rb") as handle:
        assert handle.read() == b'{"id":"a1","amount":12.30}\n'


def test_the_error_names_the_file_and_the_failure(tmp_path):
    import re

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer, _out, _ = writer_in(tmp_path, batch_size=100, root=(blocker / "batches").as_uri())
    writer.record("a", {"id": "a1"}, "t")
    with pytest.raises(FatalRunError) as raised:
        writer.flush()
    pattern = (re.escape(f"could not write the batch file {(blocker / 'batches').as_uri()}/tap-stripe--a-")
               + r"[0-9a-f-]{36}-1\.jsonl \((\w+): .+\); no further state was written")
    match = re.fullmatch(pattern, str(raised.value))
    assert match and match[1] != "NoneType", str(raised.value)
