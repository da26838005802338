"""Singer messages to stdout: orjson, buffered, one writer for the whole run.

RECORD lines are serialised with orjson (`record_line`, which worker threads may call, so
fetched records wait in memory as compact bytes) and buffered; every other message (SCHEMA,
STATE, ACTIVATE_VERSION) flushes the buffer first and itself right after, so a STATE line is
never written before the records it covers and never sits in a buffer. Only the main
thread writes, so lines never interleave.
"""

from __future__ import annotations

import os
import sys
from decimal import Decimal
from typing import IO, Any

import orjson
from singer_sdk.singerlib.encoding.base import GenericSingerWriter

FLUSH_BYTES = 1 << 16
_OPTIONS = orjson.OPT_APPEND_NEWLINE


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal):  # report amounts: exact, written as JSON numbers
        return orjson.Fragment(format(value, "f"))
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def record_line(stream: str, record: dict, time_extracted: str, version: int | None = None) -> bytes:
    """One RECORD message as a line of JSON."""
    message: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": record, "time_extracted": time_extracted}
    if version is not None:
        message["version"] = version
    return orjson.dumps(message, default=json_default, option=_OPTIONS)


class FastWriter:
    def __init__(self, out: IO[bytes] | None = None):
        self._out = out  # None: whatever sys.stdout is when flushing (test harnesses swap it)
        self._buffer: list[bytes] = []
        self._size = 0

    def record(self, stream: str, record: dict, time_extracted: str, version: int | None = None) -> None:
        self.write_line(record_line(stream, record, time_extracted, version))

    def write_line(self, line: bytes) -> None:
        """A RECORD line already serialised (by `record_line`, in any thread)."""
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def message(self, message: dict) -> None:
        self._buffer.append(orjson.dumps(message, default=json_default, option=orjson.OPT_APPEND_NEWLINE))
        self.flush()

    def flush(self) -> None:
        out = self._out or getattr(sys.stdout, "buffer", None)
        if self._buffer:
            data = b"".join(self._buffer)
            if out is None:
                sys.stdout.write(data.decode())
            else:
                _write_all(out, data)
            self._buffer.clear()
            self._size = 0
        (out or sys.stdout).flush()


def _write_all(out: IO[bytes], data: bytes) -> None:
    """Write `data` whole. To a pipe, through the file descriptor: a signal (SIGTERM from an
    orchestrator) that interrupts a partial write makes Python's buffered writer lose the
    rest of the data, cutting a line (seen with a slow reader); `os.write` returns how much
    it wrote, and the loop writes the rest."""
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests, harnesses)
        out.write(data)
        return
    out.flush()  # anything written to it before goes first
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class SDKMessageWriter(GenericSingerWriter):
    """Lets the SDK's own messages (discovery, `--test`) go through the same orjson path."""

    def __init__(self) -> None:
        self.fast = FastWriter()

    def serialize_message(self, message: Any) -> bytes:
        return orjson.dumps(message.to_dict(), default=json_default)

    def write_message(self, message: Any) -> None:
        self.fast.message(message.to_dict())
