"""The state (bookmarks) format, version 1, and its validation.

```
{"bookmarks": {
   "<stream>": {
     "accounts": {
       "<account id, or 'default' for the key's own account>": {
         "created": 1714521600,      # every object created before this second was emitted
         "events": 1714521600,       # every event before this second was applied
         "version": 1714521600000,   # the table version of the last full read: incremental
                                     # records carry it, so the next full read can drop rows
         "resync": {"version": 1714521600000, "created": 1714000000,   # a full re-read in
                    "started": 1714521600},  # progress; `started` becomes `events` at its end
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

from typing import Any

STATE_FORMAT = 1
DEFAULT_ACCOUNT = "default"


class StateError(ValueError):
    """The state file is not tap-stripe state; the message is one line."""


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
            for key in ("created", "events", "report", "version"):
                value = cursors.get(key)
                if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                    raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.{key}' must be "
                                     "unix seconds (an integer)")
            pending = cursors.get("report_pending")
            if pending is not None and not (isinstance(pending, list) and all(isinstance(p, str) and p
                                                                               for p in pending)):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.report_pending' must be "
                                 "a list of payout ids")
            resync = cursors.get("resync")
            if resync is not None and not (isinstance(resync, dict) and isinstance(resync.get("version"), int)
                                           and isinstance(resync.get("started", 0), int)):
                raise StateError(f"state 'bookmarks.{stream}.accounts.{account}.resync' is malformed")
    ours = state.get("tap_stripe")
    fmt = ours.get("state_format", STATE_FORMAT) if isinstance(ours, dict) else STATE_FORMAT
    if isinstance(fmt, int) and fmt > STATE_FORMAT:
        raise StateError(f"state format {fmt} is newer than this tap understands ({STATE_FORMAT}); upgrade tap-stripe")
    return state


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
