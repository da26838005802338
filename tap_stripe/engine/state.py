"""The state (bookmarks) format, version 1, and its validation.

```
{"bookmarks": {
   "<stream>": {
     "accounts": {
       "<account id, or 'default' for the key's own account>": {
         "created": 1714521600,      # every object created before this second was emitted
         "done": [[1714600000, 1714700000]],  # spans after `created` a killed run emitted whole
         "events": 1714521600,       # every event before this second was applied (each stream of
                                     # a parent/child family keeps its own)
         "pending": 1714000000,      # streams whose objects change without events: every object
                                     # created before this second is settled
         "reconciled": 1714521600,   # when the last full re-read began (periodic reconciliation)
         "version": 1714521600000,   # the table version of the last full read: incremental
                                     # records carry it, so the next full read can drop rows
         "resync": {"version": 1714521600000, "created": 1714000000,   # a full re-read in
                    "started": 1714521600,   # progress; `started` becomes `events` at its end
                    "done": [[…, …]],        # spans after its `created` it emitted whole
                    "streams": ["customers"]},  # the streams that received all of it so far
         "table": {"version": 1714521600000, "cursor": "qt_…",  # a full table's read in
                   "earlier": ["qt_…"],      # progress: its next page starts after `cursor`
                   "streams": ["quotes"]},   # (for the streams selected then)
         "report": 1714521600,       # report streams: the end of the last interval read
         "report_pending": ["po_…"]  # single-payout reports: payouts before `report` still to read
       }}}},
 "tap_stripe": {"state_format": 1}}
```

Cursors are unix seconds and exclusive: a cursor only moves past records already emitted,
so a run resumed from any emitted STATE loses nothing. Unknown keys are kept as they are,
so later versions can add to the format.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tap_stripe.errors import StateError

STATE_FORMAT = 1
DEFAULT_ACCOUNT = "default"


def validate(state: Any) -> dict:
    if state in (None, ""):
        return {}
    if not isinstance(state, dict):
        raise StateError("state must be a JSON object with a 'bookmarks' object")
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise StateError("state 'bookmarks' must be an object of stream name to bookmark")
    for stream, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            raise StateError(f"state bookmark of stream '{stream}' must be an object")
        accounts = bookmark.get("accounts", {})
        if not isinstance(accounts, dict):
            raise StateError(f"state 'bookmarks.{stream}.accounts' must be an object")
        for account, cursors in accounts.items():
            if not isinstance(cursors, dict):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}' must be an object")
            for key in ("created", "events", "report", "version", "pending", "reconciled"):
                value = cursors.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.{key}' must be "
                                     "unix seconds (an integer)")
            pending = cursors.get("report_pending")
            if pending is not None and not (isinstance(pending, list) and all(isinstance(p, str) and p
                                                                               for p in pending)):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.report_pending' must be "
                                 "a list of payout ids")
            table = cursors.get("table")
            if table is not None and not (isinstance(table, dict) and isinstance(table.get("version"), int)
                                          and isinstance(table.get("cursor"), str)):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.table' is malformed")
            resync = cursors.get("resync")
            spans = {"done": cursors.get("done"),
                     "resync.done": resync.get("done") if isinstance(resync, dict) else None}
            for where, done in spans.items():
                if done is not None and not _spans(done):
                    raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.{where}' must be a list of "
                                     "[from, to] pairs of unix seconds")
            resync = cursors.get("resync")
            if resync is not None and not (isinstance(resync, dict) and isinstance(resync.get("version"), int)
                                           and isinstance(resync.get("started", 0), int)):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.resync' is malformed")
    ours = state.get("tap_stripe")
    fmt = ours.get("state_format", STATE_FORMAT) if isinstance(ours, dict) else STATE_FORMAT
    if isinstance(fmt, int) and fmt > STATE_FORMAT:
        raise StateError(f"state format {fmt} is newer than this tap understands ({STATE_FORMAT}); upgrade tap-stripe")
    return state


def adopt(state: Any, streams: set[str], account: str | None) -> tuple[Any, str | None]:
    """A state written by another Stripe tap, as this tap's, and one line saying so.

    singer-io's tap-stripe (Meltano Hub's default variant) keeps
    `{"charges": {"created": 1700000000}, "charges_events": {"updates_created": …},
    "invoices": {"date": …}}`; SDK taps keep `{"replication_key_value": …}` (unix seconds or
    RFC 3339), also per partition. Their bookmarks become `created` and `events` of the
    account this run reads (their taps read one account); a stream with `created` and no
    `events` reads events from its `created` (engine), so no change since is missed. A state
    that is ours, empty or unrecognised is returned as it is.
    """
    if not isinstance(state, dict) or isinstance(state.get("tap_stripe"), dict):
        return state, None
    bookmarks = state.get("bookmarks")
    if not isinstance(bookmarks, dict) or not bookmarks or \
            any(isinstance(b, dict) and "accounts" in b for b in bookmarks.values()):
        return state, None
    ours: dict[str, dict] = {}
    for name, bookmark in bookmarks.items():
        if not isinstance(bookmark, dict):
            continue
        if name.endswith("_events") and name[:-7] in streams:
            events = _seconds(bookmark.get("updates_created"))
            if events is not None:
                _cursors(ours, name[:-7], account)["events"] = events
            continue
        if name not in streams:
            continue
        values = [_seconds(bookmark.get(k)) for k in ("created", "date", "replication_key_value")]
        values += [_seconds(p.get("replication_key_value")) for p in bookmark.get("partitions") or []
                   if isinstance(p, dict)]
        found = [v for v in values if v is not None]
        if found:  # partitions: the oldest, so none of them is passed
            _cursors(ours, name, account)["created"] = min(found)
    if not ours:
        return state, None
    singer_io = any(name.endswith("_events") or "created" in b or "date" in b
                    for name, b in bookmarks.items() if isinstance(b, dict))
    kind = "singer-io tap-stripe" if singer_io else "a Singer SDK tap"
    return {"bookmarks": ours}, (f"The state is from {kind}: continuing from its bookmarks of {len(ours)} "
                                 f"stream(s) ({', '.join(sorted(ours))}).")


def _spans(value: Any) -> bool:
    """Whether `value` is a list of [from, to] pairs of unix seconds."""
    return isinstance(value, list) and all(
        isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in span)
        and span[0] < span[1] for span in value)


def _cursors(bookmarks: dict, stream: str, account: str | None) -> dict:
    return bookmarks.setdefault(stream, {"accounts": {}})["accounts"].setdefault(account or DEFAULT_ACCOUNT, {})


def _seconds(value: Any) -> int | None:
    """Unix seconds from an integer, a float or an RFC 3339 string; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return int(value) if value.isdigit() else None
        return int(moment.timestamp()) if moment.tzinfo else None
    return None


class State:
    """The run's state; the engine reads cursors and writes them after emitting records."""

    def __init__(self, state: dict):
        self.data = state
        self.data.setdefault("bookmarks", {})
        self.data["tap_stripe"] = {**self.data.get("tap_stripe", {}), "state_format": STATE_FORMAT}

    def cursors(self, stream: str, account: str | None) -> dict:
        bookmark = self.data["bookmarks"].setdefault(stream, {})
        return bookmark.setdefault("accounts", {}).setdefault(account or DEFAULT_ACCOUNT, {})

    def get(self, stream: str, account: str | None, key: str) -> Any:
        return self.data["bookmarks"].get(stream, {}).get("accounts", {}).get(account or DEFAULT_ACCOUNT, {}).get(key)

    def advance(self, stream: str, account: str | None, key: str, value: int) -> None:
        """Move a cursor forward to `value`; never back."""
        cursors = self.cursors(stream, account)
        current = cursors.get(key)
        cursors[key] = value if current is None else max(current, value)

    def set(self, stream: str, account: str | None, key: str, value: Any) -> None:
        cursors = self.cursors(stream, account)
        if value is None:
            cursors.pop(key, None)
        else:
            cursors[key] = value
