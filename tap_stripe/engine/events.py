"""Changed and deleted objects, from `/v1/events`.

After a stream's first load, each run reads the events of the stream's types
(`types[]`, at most 20, which the generator checks) created since the stream's events
bookmark, in created-time windows like the lists. Within a window only the newest event of
each object counts. That object is then emitted as it is now: fetched again by id, so the
pinned API version and the expansions apply (or, with `updates_mode: snapshot`, the event's
own copy). A `*.deleted` event, or a fetch answering `deleted: true`, becomes a record with
`deleted: true` and `_sdc_deleted_at`. Child lists of a changed object are read again.
Every record carries the event's time as `_updated_at`.

A child list's own events (`customer.tax_id.*`, `person.*`, `capability.updated`, …) are read
with its parent's: such a change re-reads the parent and all its child lists (Stripe sends
no event of the parent), and a child's `*.deleted` event becomes the child's deletion record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tap_stripe.api.client import StripeClient
from tap_stripe.api.pagination import list_pages
from tap_stripe.engine.children import Children
from tap_stripe.engine.feeds import Feed, Member, Output, Segment
from tap_stripe.engine.windows import Split, created_params, split_if_dense
from tap_stripe.errors import StripeError
from tap_stripe.output.records import RecordShaper
from tap_stripe.output.summary import RunSummary
from tap_stripe.spec import StreamSpec

EVENTS_PATH = "/v1/events"


@dataclass
class EventContext:
    """What applying events needs of the ctx."""

    client: StripeClient
    shapers: Mapping[str, RecordShaper]
    children: Children
    summary: RunSummary
    expand: dict[str, list[str]]
    updates_mode: str
    start: int | None = None  # objects created before it are outside the run (start_date)


def read_window(ctx: EventContext, feed: Feed, segment: Segment) -> tuple[list[dict], Split | None]:
    """The events of `[lo, hi)` in ascending order, or the part kept by a split."""
    params: list[tuple[str, Any]] = [("types[]", t) for t in segment.types]
    params += created_params(segment.lo, segment.hi)
    stream = feed.name
    pages = list_pages(ctx.client, EVENTS_PATH, params, account=feed.account, endpoint=EVENTS_PATH,
                       stream=stream)
    first = next(pages)
    ctx.summary.page(stream)
    assert segment.lo is not None and segment.hi is not None  # an events window has both ends
    split = split_if_dense(segment.lo, segment.hi, first, "created")
    if split is not None:
        pages.close()
        return list(reversed(split.kept)), split
    collected = [first.get("data") or []]
    for body in pages:
        ctx.summary.page(stream)
        collected.append(body.get("data") or [])
    return [e for page in reversed(collected) for e in reversed(page)], None


def newest_per_object(events: list[dict], key: Callable[[dict], str | None] | None = None,
                      final: Callable[[dict], bool] | None = None) -> list[dict]:
    """The last event of each object (or of each `key`), in ascending order of that event.
    Every one's (`previous_attributes`, object) is kept on it, in order, as `_changes`: what
    the object held before (an embedded list's items since removed) is not lost with the
    events it keeps only the newest of. An event `final` says ends its object (its deletion)
    is kept over any later one of its key: a child's event re-reads a parent that is gone."""
    newest: dict[str, dict] = {}
    previous: dict[str, list[tuple[dict, dict]]] = {}
    ended: set[str] = set()
    for event in events:  # ascending
        obj = (event.get("data") or {}).get("object") or {}
        k = key(event) if key else obj.get("id")
        if k and k not in ended:
            newest.pop(k, None)
            newest[k] = event
            if final is not None and final(event):
                ended.add(k)
            attributes = (event.get("data") or {}).get("previous_attributes")
            if attributes:
                previous.setdefault(k, []).append((attributes, obj))
    for k, changes in previous.items():
        newest[k] = {**newest[k], "_changes": changes}
    return list(newest.values())


def event_key(feed: Feed, event: dict) -> str | None:
    """What an event changes, for `newest_per_object`: the object, or for a child's event
    the parent it re-reads (so a parent's and its children's events re-read it once), or
    for a child's deletion the child."""
    obj = event["data"]["object"]
    child = feed.child_of_type(obj.get("object"))
    if child is None:
        return obj.get("id")
    if _is_deletion(child.spec, event):
        return f"deleted {obj.get('id')}"
    return parent_id(child.spec, obj)


def ends_object(feed: Feed, event: dict) -> bool:
    """Whether an event deletes the feed's object (`newest_per_object`'s `final`): a child's
    event keyed by that object later in the window must not replace it (it would re-read a
    parent that is gone and emit nothing, and the deletion record would be lost)."""
    return _is_deletion(feed.spec, event)


def parent_id(spec: StreamSpec, obj: dict) -> str | None:
    """The id of the parent a child object belongs to: its field that links to the parent
    stream (a fee refund's `fee`), else the field named like the path's parameter (a tax
    id's `customer`, a person's `account`)."""
    field = next((f for f, stream in spec.expandable if stream == spec.parent), spec.parent_param or "")
    value = obj.get(field)
    value = value.get("id") if isinstance(value, dict) else value
    return value if isinstance(value, str) and value else None


def _is_deletion(spec: StreamSpec, event: dict) -> bool:
    return bool(spec.deleted_event) and event["type"] == spec.deleted_event


def apply_event(ctx: EventContext, feed: Feed, event: dict) -> Output:
    """The records one object's newest event stands for: the object now, or its deletion."""
    spec = feed.spec
    root = feed.root
    shaper = ctx.shapers[spec.name]
    snapshot = event["data"]["object"]
    changed_at = event["created"]
    if snapshot.get("object") not in spec.object_types:
        return _apply_child_event(ctx, feed, event, changed_at)
    if not _in_range(ctx, spec, snapshot):
        return []
    if _listed(feed, spec, event):
        return []  # this run's list read it after this event, and its children with it
    if feed.deletions_only and event["type"] != spec.deleted_event:
        return _removed_children(ctx, feed, event, changed_at)
    output: Output = []
    if spec.deleted_event and event["type"] == spec.deleted_event:
        obj = None
    elif not spec.retrieve_path or (ctx.updates_mode == "snapshot" and not spec.expansions(ctx.expand)):
        obj = snapshot  # snapshots are never expanded: streams with expansions are re-fetched
    else:
        obj = _refetch(ctx, feed, snapshot["id"])
        if obj is None:
            obj = snapshot  # gone since; its deletion event, if any, comes in a later window
    if obj is None or obj.get("deleted") is True:
        if root.selected:
            output.append((spec.name, shaper.deletion(snapshot["id"], snapshot.get("object", ""), changed_at,
                                                       feed.record_account)))
        # Its child objects went with it (Stripe sends no event for them): those the
        # deleted object still embeds are deleted too.
        for child in root.children:
            if child.selected and not child.skipped:
                output.extend(_deletions(ctx, feed, child, _items(snapshot.get(child.spec.embedded_field or "")),
                                         changed_at))
        return output
    return _object_now(ctx, feed, obj, changed_at, [attributes for attributes, _ in event.get("_changes") or ()])


def _apply_child_event(ctx: EventContext, feed: Feed, event: dict, changed_at: int) -> Output:
    """A child's own event: its deletion record, or its parent read again with every child list."""
    snapshot = event["data"]["object"]
    child = feed.child_of_type(snapshot.get("object"))
    if child is None or child.skipped:
        return []
    if _is_deletion(child.spec, event):
        if not child.selected:
            return []
        record = ctx.shapers[child.spec.name].deletion(snapshot["id"], snapshot.get("object", ""), changed_at,
                                                        feed.record_account)
        return [(child.spec.name, record)]
    parent = parent_id(child.spec, snapshot)
    if parent is None or not feed.spec.retrieve_path or feed.deletions_only:
        return []
    obj = _refetch(ctx, feed, parent)
    if obj is None or obj.get("deleted") is True or not _in_range(ctx, feed.spec, obj):
        return []  # the parent is gone (its own deletion event says so), or outside start_date
    return _object_now(ctx, feed, obj, changed_at, ())


def _object_now(ctx: EventContext, feed: Feed, obj: dict, changed_at: int, previous: Iterable[dict]) -> Output:
    """A changed object as it is now, with every child list read again. Children its events'
    `previous_attributes` listed and that are gone now (an item removed from a subscription,
    a line from an invoice: Stripe sends no event of their own) become deletion records."""
    root = feed.root
    output: Output = []
    if root.selected:
        output.append((feed.spec.name, ctx.shapers[feed.spec.name].shape(obj, feed.record_account, changed_at)))
    for member in root.children:
        if member.skipped:
            continue
        records = ctx.children.records(feed, member, obj, changed_at)
        output.extend(records)
        before: dict[str, dict] = {}
        for attributes in previous:
            before.update(_items(attributes.get(member.spec.embedded_field or "")))
        if member.selected and before:
            now = {record.get("id") for stream, record in records if stream == member.spec.name}
            output.extend(_deletions(ctx, feed, member, {k: v for k, v in before.items() if k not in now}, changed_at))
    return output


def _removed_children(ctx: EventContext, feed: Feed, event: dict, changed_at: int) -> Output:
    """Deletion records of the children an update removed from its object, without reading
    the object again (a full re-read reads it): the items of an embedded list before the
    update (`previous_attributes`) that are not in the list after it. When that list goes on
    past its first page (`has_more`), an item missing from the page may only have moved: the
    whole child list is read once to tell (an item on no page is gone)."""
    output: Output = []
    for member in feed.root.children:
        field = member.spec.embedded_field
        if not field or not member.selected or member.skipped:
            continue
        gone: dict[str, dict] = {}
        longer: dict | None = None  # the newest object whose list goes on past its first page
        for attributes, obj in event.get("_changes") or ():
            after = obj.get(field)
            if isinstance(attributes.get(field), dict) and isinstance(after, dict):
                kept = _items(after)
                missing = {k: v for k, v in _items(attributes[field]).items() if k not in kept}
                gone.update(missing)
                if missing and after.get("has_more"):
                    longer = obj
        if gone and longer is not None:
            now = {record.get("id") for stream, record in ctx.children.records(feed, member, longer, changed_at)
                   if stream == member.spec.name}
            gone = {k: v for k, v in gone.items() if k not in now}
        output.extend(_deletions(ctx, feed, member, gone, changed_at))
    return output


def _items(listing: Any) -> dict[str, dict]:
    """The items of an embedded list (`{"data": [...], "has_more": …}`) by id."""
    data = listing.get("data") if isinstance(listing, dict) else None
    return {item["id"]: item for item in data or [] if isinstance(item, dict) and item.get("id")}


def _deletions(ctx: EventContext, feed: Feed, member: Member, items: dict[str, dict], changed_at: int) -> Output:
    """Deletion records of a child stream's objects."""
    shaper = ctx.shapers[member.spec.name]
    return [(member.spec.name, shaper.deletion(item_id, item.get("object", ""), changed_at, feed.record_account))
            for item_id, item in items.items()]


def _in_range(ctx: EventContext, spec: StreamSpec, obj: dict) -> bool:
    """Whether an object was created at or after `start_date` (the run reads nothing older)."""
    created = obj.get(spec.created_field or "")
    return ctx.start is None or not isinstance(created, int) or created >= ctx.start


def _listed(feed: Feed, spec: StreamSpec, event: dict) -> bool:
    """Whether an update event is redundant: its object was created where this run's list
    windows read every selected member (after every event of the run). Deletions, and updates
    that removed children from an embedded list (`_changes`), are never redundant."""
    if feed.listed_from is None or event["type"] == spec.deleted_event or event.get("_changes"):
        return False
    created = event["data"]["object"].get(spec.created_field or "")
    return isinstance(created, int) and feed.listed_from <= created < feed.hi


def _refetch(ctx: EventContext, feed: Feed, object_id: str) -> dict | None:
    """The object as it is now, with this run's expansions; None when Stripe no longer has it."""
    spec = feed.spec
    assert spec.retrieve_path is not None  # only streams that have one re-fetch
    path = spec.retrieve_path.replace("{id}", object_id)
    params = [("expand[]", f) for f in spec.expansions(ctx.expand)]
    try:
        return ctx.client.get(path, params, account=feed.account, endpoint=spec.retrieve_path,
                              stream=spec.name)
    except StripeError as exc:
        if exc.status == 404:
            return None
        raise
