"""Changed and deleted objects, from `/v1/events`.

After a stream's first load, each run reads the events of the stream's types
(`types[]`, at most 20, which the generator checks) created since the stream's events
bookmark, in created-time windows like the lists. Within a window only the newest event of
each object counts. That object is then emitted as it is now: fetched again by id, so the
pinned API version and the expansions apply (or, with `updates_mode: snapshot`, the event's
own copy). A `*.deleted` event, or a fetch answering `deleted: true`, becomes a record with
`deleted: true` and `_sdc_deleted_at`. Child lists of a changed object are read again.
Every record carries the event's time as `_updated_at`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tap_stripe.client import StripeError
from tap_stripe.pagination import list_pages
from tap_stripe.windows import Split, created_params, split_if_dense

if TYPE_CHECKING:
    from tap_stripe.engine import Feed, Output, Run, Segment

EVENTS_PATH = "/v1/events"


def read_window(run: "Run", feed: "Feed", segment: "Segment") -> tuple[list[dict], Split | None]:
    """The events of `[lo, hi)` in ascending order, or the part kept by a split."""
    params: list[tuple[str, Any]] = [("types[]", t) for t in feed.events_types]
    params += created_params(segment.lo, segment.hi)
    stream = feed.name
    pages = list_pages(run.client, EVENTS_PATH, params, account=feed.account, endpoint=EVENTS_PATH,
                       stream=stream)
    first = next(pages)
    run.summary.page(stream)
    split = split_if_dense(segment.lo, segment.hi, first, "created")
    if split is not None:
        pages.close()
        return list(reversed(split.kept)), split
    collected = [first.get("data") or []]
    for body in pages:
        run.summary.page(stream)
        collected.append(body.get("data") or [])
    return [e for page in reversed(collected) for e in reversed(page)], None


def newest_per_object(events: list[dict]) -> list[dict]:
    """The last event of each object, in ascending order of that event."""
    newest: dict[str, dict] = {}
    for event in events:  # ascending
        obj = (event.get("data") or {}).get("object") or {}
        if obj.get("id"):
            newest.pop(obj["id"], None)
            newest[obj["id"]] = event
    return list(newest.values())


def apply_event(run: "Run", feed: "Feed", event: dict) -> "Output":
    """The records one object's newest event stands for: the object now, or its deletion."""
    spec = feed.spec
    root = feed.root
    shaper = run.shapers[spec.name]
    snapshot = event["data"]["object"]
    if snapshot.get("object") not in spec.object_types:
        return []
    changed_at = event["created"]
    output: "Output" = []
    if spec.deleted_event and event["type"] == spec.deleted_event:
        obj = None
    elif not spec.retrieve_path or (run.settings.updates_mode == "snapshot" and not spec.expansions(run.expand)):
        obj = snapshot  # snapshots are never expanded: streams with expansions are re-fetched
    else:
        obj = _refetch(run, feed, snapshot)
    if obj is None or obj.get("deleted") is True:
        if root.selected:
            output.append((spec.name, shaper.deletion(snapshot["id"], snapshot.get("object", ""), changed_at,
                                                       feed.account)))
        return output
    if root.selected:
        output.append((spec.name, shaper.shape(obj, feed.account, changed_at)))
    for child in root.children:
        if not child.skipped:
            output.extend(run._child_records(feed, child, obj, changed_at))
    return output


def _refetch(run: "Run", feed: "Feed", snapshot: dict) -> dict | None:
    spec = feed.spec
    path = spec.retrieve_path.replace("{id}", snapshot["id"])
    params = [("expand[]", f) for f in spec.expansions(run.expand)]
    try:
        return run.client.get(path, params, account=feed.account, endpoint=spec.retrieve_path,
                              stream=spec.name)
    except StripeError as exc:
        if exc.status == 404:
            return snapshot  # gone since; its deletion event, if any, comes in a later window
        raise
