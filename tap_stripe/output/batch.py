"""The SDK's BATCH messages (`batch_config`): records go to encoded files, BATCH messages name them.

With `batch_config` set, every selected stream is batched, as in an SDK tap. Records take the
tap's whole record path first (sensitive-data policies, deselection, stream maps,
flattening), so a file holds exactly what the stream's SCHEMA describes. Each file holds at
most `batch_size` records of one output stream (and one table version); it is encoded whole
and written in one piece, and only then does the BATCH message naming it go out. The file
name and URL, the message (`SDKBatchMessage`) and the storage (`StorageTarget`, fsspec) are
the SDK's own, so an SDK target reads the files as it reads an SDK tap's.

Formats: `jsonl`, one record per line, gzip-compressed (`compression: gzip`, the default,
`.json.gz`) or not (`compression: none`, `.jsonl`; the SDK's own tap gzips whatever this
says, which an SDK target then cannot read). `parquet` needs pyarrow, which this tap does not
install: it is refused with a setting error rather than ignored.

STATE: a STATE line may only follow the files holding every record written before it. The
engine writes STATE about once a second; closing every open file each time would make many
small files, so a STATE arriving while files are open is held (a newer one replaces it) and
goes out as soon as the files that were open when it arrived are complete — when they reach
`batch_size`, when any other message (ACTIVATE_VERSION) passes, at the end of the run, or,
at the latest, with the first STATE that arrives `STATE_DELAY_SECONDS` after the held one
(those files are then closed early). A crash loses at most that much progress, never a
record: the last STATE written only covers records in files already named by a BATCH message.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import orjson
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, SDKBatchMessage, StorageTarget

from tap_stripe.errors import ConfigError, FatalRunError
from tap_stripe.output.writer import json_default

STATE_DELAY_SECONDS = 30.0
_COMPRESS_BYTES = 1 << 20  # encoded lines are compressed in blocks of about this size
_OPTIONS = orjson.OPT_APPEND_NEWLINE


def batch_config(raw: Any) -> BatchConfig | None:
    """The SDK's BatchConfig for the `batch_config` setting (None if unset); ConfigError names
    what is wrong."""
    if not raw:
        return None
    if not isinstance(raw, dict):
        raise ConfigError("setting 'batch_config' must be an object with 'encoding' and 'storage'")
    unknown = sorted(set(raw) - {"encoding", "storage", "batch_size"})
    if unknown:
        raise ConfigError(f"setting 'batch_config' has an unknown key '{unknown[0]}' "
                          "(expected encoding, storage, batch_size)")
    encoding, storage = raw.get("encoding"), raw.get("storage")
    if not isinstance(encoding, dict) or not isinstance(storage, dict):
        raise ConfigError("setting 'batch_config' needs 'encoding' ({\"format\": \"jsonl\"}) and "
                          "'storage' ({\"root\": \"file://…\"}) objects")
    fmt = encoding.get("format")
    if fmt == "parquet":
        raise ConfigError("setting 'batch_config.encoding.format': parquet is not supported by tap-stripe "
                          "(it needs pyarrow); use jsonl")
    if fmt != "jsonl":
        raise ConfigError("setting 'batch_config.encoding.format' must be 'jsonl'")
    compression = encoding.get("compression") or "gzip"
    if compression not in ("gzip", "none"):
        raise ConfigError("setting 'batch_config.encoding.compression' must be 'gzip' or 'none'")
    unknown = sorted(set(encoding) - {"format", "compression"})
    if unknown:
        raise ConfigError(f"setting 'batch_config.encoding' has an unknown key '{unknown[0]}'")
    if not isinstance(storage.get("root"), str) or not storage["root"]:
        raise ConfigError("setting 'batch_config.storage.root' is required: where to write the files "
                          "(file:///path, or any fsspec URL)")
    unknown = sorted(set(storage) - {"root", "prefix", "params"})
    if unknown:
        raise ConfigError(f"setting 'batch_config.storage' has an unknown key '{unknown[0]}'")
    size = raw.get("batch_size", None)
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ConfigError("setting 'batch_config.batch_size' must be a positive integer")
    return BatchConfig(encoding=BaseBatchFileEncoding(format="jsonl", compression=compression),
                       storage=StorageTarget(root=storage["root"], prefix=storage.get("prefix"),
                                             params=dict(storage.get("params") or {})),
                       **({"batch_size": size} if size is not None else {}))  # else the SDK's default


class _File:
    """One batch file being filled: encoded lines, compressed in blocks, in memory."""

    __slots__ = ("compressor", "count", "lines", "name", "parts", "serial", "size", "stream", "version")

    def __init__(self, serial: int, stream: str, version: int | None, name: str, gzip: bool):
        self.serial = serial
        self.stream = stream
        self.version = version
        self.name = name
        self.count = 0
        self.lines: list[bytes] = []
        self.size = 0
        self.parts: list[bytes] = []
        # wbits 31: a gzip stream, as gzip.GzipFile writes (read back with gzip.open)
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None

    def add(self, line: bytes) -> None:
        self.lines.append(line)
        self.count += 1
        self.size += len(line)
        if self.size >= _COMPRESS_BYTES and self.compressor is not None:
            self._compress()

    def _compress(self) -> None:
        assert self.compressor is not None
        self.parts.append(self.compressor.compress(b"".join(self.lines)))
        self.lines.clear()
        self.size = 0

    def content(self) -> bytes:
        if self.compressor is None:
            return b"".join(self.lines)
        self._compress()
        self.parts.append(self.compressor.flush())
        return b"".join(self.parts)


class BatchWriter:
    """A writer (as FastWriter) for a run with `batch_config`: records go to batch files,
    every other message through `out`, in order, after the BATCH messages it must follow.

    It has no `write_line`, so the emitters finish every record on the main thread and hand
    it here as a dict (`record`)."""

    def __init__(self, out: Any, config: BatchConfig, tap_name: str,
                 clock: Callable[[], float] = time.monotonic):
        self.out = out
        self.config = config
        self.encoding = config.encoding
        self.gzip = config.encoding.compression == "gzip"
        self.suffix = ".json.gz" if self.gzip else ".jsonl"
        self.tap_name = tap_name
        self.clock = clock
        self.files: dict[tuple[str, int | None], _File] = {}
        self._sync_ids: dict[str, str] = {}
        self._serial: dict[str, int] = {}
        self._held: dict | None = None  # a STATE waiting for the files it covers
        self._pending: set[int] = set()  # the serials of those files
        self._files_opened = 0
        self._held_since: float | None = None
        self.batches = 0
        self.broken = False  # a file could not be written: no STATE goes out any more

    def record(self, stream: str, record: dict, time_extracted: str, version: int | None = None) -> None:
        key = (stream, version)
        file = self.files.get(key)
        if file is None:
            file = self.files[key] = self._new_file(stream, version)
        file.add(orjson.dumps(record, default=json_default, option=_OPTIONS))
        if file.count >= self.config.batch_size:
            self._close(key)
            if self._held is not None and not self._pending:
                self._release()

    def message(self, message: dict) -> None:
        if self.broken and message.get("type") in ("STATE", "ACTIVATE_VERSION"):
            return  # either would vouch for records that were lost
        if message.get("type") == "STATE":
            if not self.files:
                self._held = None
                self._pending.clear()
                self._held_since = None
                self.out.message(message)
                return
            now = self.clock()
            if self._held_since is None:
                self._held_since = now
            self._held = message
            self._pending = {f.serial for f in self.files.values()}
            if now - self._held_since >= STATE_DELAY_SECONDS:
                self.close_all()
            return
        self.close_all()
        self.out.message(message)

    def flush(self) -> None:
        self.close_all()
        self.out.flush()

    def close_all(self) -> None:
        """Close every open file (their BATCH messages), then write a held STATE."""
        for key in list(self.files):
            self._close(key)
        if self._held is not None:
            self._release()

    # ----- internals -----------------------------------------------------------------

    def _new_file(self, stream: str, version: int | None) -> _File:
        sync_id = self._sync_ids.get(stream)
        if sync_id is None:  # the SDK's name: <prefix><tap>--<stream>-<uuid>-<i>.json.gz
            sync_id = self._sync_ids[stream] = f"{self.tap_name}--{stream}-{uuid4()}"
        serial = self._serial[stream] = self._serial.get(stream, 0) + 1
        name = f"{self.config.storage.prefix or ''}{sync_id}-{serial}{self.suffix}"
        self._files_opened += 1
        return _File(self._files_opened, stream, version, name, self.gzip)

    def _close(self, key: tuple[str, int | None]) -> None:
        file = self.files.pop(key)
        data = file.content()
        storage = self.config.storage
        try:
            with storage.open(file.name, "wb") as handle:
                handle.write(data)
        except Exception as exc:
            # Its records are lost to this run: no STATE may follow (it would cover them).
            self.broken = True
            self._held = None
            raise FatalRunError(f"could not write the batch file {storage.get_url(file.name)} "
                                f"({type(exc).__name__}: {exc}); no further state was written") from None
        message = SDKBatchMessage(stream=file.stream, encoding=self.encoding,
                                  manifest=[storage.get_url(file.name)], version=file.version)
        self.out.message(message.to_dict())
        self.batches += 1
        self._pending.discard(file.serial)

    def _release(self) -> None:
        held, self._held = self._held, None
        self._pending.clear()
        self._held_since = None
        if held is not None and not self.broken:
            self.out.message(held)
