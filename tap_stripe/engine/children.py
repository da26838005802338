"""Child lists (invoice lines, a customer's tax ids, an account's persons, …): every record of
one child list of one parent, from the page the parent embeds and then the child endpoint,
with the child's own children. Used by the list fetchers and by events (a changed parent's
children are read again)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from tap_stripe.api.client import StripeClient
from tap_stripe.api.pagination import list_pages
from tap_stripe.engine.feeds import Feed, Member, Output
from tap_stripe.errors import PermissionDenied, ProductNotSetUp, StripeError
from tap_stripe.output.records import RecordShaper
from tap_stripe.output.summary import RunSummary
from tap_stripe.spec import StreamSpec

LOGGER = logging.getLogger("tap_stripe")


class Children:
    """Reads child lists for a run; safe to call from worker threads."""

    def __init__(self, client: StripeClient, shapers: Mapping[str, RecordShaper], expand: dict[str, list[str]],
                 summary: RunSummary):
        self.client = client
        self.shapers = shapers
        self.expand = expand
        self.summary = summary

    def includable(self, member: Member) -> tuple[str, ...]:
        """The fields of `member`'s objects that embed a child list only when expanded
        (`StreamSpec.embedded_when_expanded`) and that its own expansions do not ask for: the
        run may add them for its children, never for `member`'s records (`included`)."""
        own = member.spec.expansions(self.expand)
        return tuple(child.spec.embedded_field for child in member.children
                     if child.spec.embedded_when_expanded and child.spec.embedded_field
                     and child.spec.embedded_field not in own)

    def parent_query(self, member: Member, feed: Feed) -> tuple[list[tuple[str, Any]], list[str]]:
        """The parameters of `member`'s list calls, and the child lists they ask Stripe to
        embed: `expand[]=data.<field>` for each includable list (`includable`) of a child read
        now (not skipped) that has no expansions of its own (an embedded list is never
        expanded), so a parent whose whole list is embedded costs no request for it. None once
        a call that asked was refused (`feed.include_refused`): a key may read the parent and
        not the child."""
        params = member.spec.list_query(self.expand)
        if feed.include_refused:
            return params, []
        fields = self.includable(member)
        added = [f"data.{child.spec.embedded_field}" for child in member.children
                 if child.spec.embedded_field in fields and not child.skipped
                 and not child.spec.expansions(self.expand)]
        return params + [("expand[]", value) for value in added], added

    @staticmethod
    def included(fields: tuple[str, ...], obj: dict) -> tuple[dict, dict]:
        """(`obj` for its own record, `obj` for its children): the child lists of `fields`
        (`includable`) are taken out of the first, so a parent's record is the same whether
        or not its list asked for them, and kept in the second."""
        if not fields or not any(f in obj for f in fields):
            return obj, obj
        lists = {f: obj.pop(f) for f in fields if f in obj}
        return obj, {**obj, **lists}

    def embedded(self, spec: StreamSpec, parent_obj: dict) -> dict | None:
        """The child list embedded in its parent (`{"data": [...], "has_more": …}`), if this run
        uses it: an embedded list is never expanded, so with expansions the child endpoint is read."""
        if not spec.embedded_field or spec.expansions(self.expand):
            return None
        embedded = parent_obj.get(spec.embedded_field)
        return embedded if isinstance(embedded, dict) and isinstance(embedded.get("data"), list) else None

    def complete_in(self, member: Member, parent_obj: dict) -> bool:
        """Whether `member`'s records for this parent need no request: its whole list is
        embedded and it has no child lists of its own to read."""
        embedded = self.embedded(member.spec, parent_obj)
        return embedded is not None and not embedded.get("has_more") and \
            all(grandchild.skipped for grandchild in member.children)

    def records(self, feed: Feed, member: Member, parent_obj: dict, changed: Any) -> Output:
        """Every record of one child list of one parent (embedded first page, then the rest)."""
        spec = member.spec
        try:
            objects = [dict(obj) for obj in self._objects(feed, spec, parent_obj)]
        except (PermissionDenied, ProductNotSetUp) as exc:
            # The key may not read this child list: the main thread skips the child stream
            # (and its own children) before it writes more of the feed; the parent and its
            # other children are still written.
            feed.child_failures.append((member, exc))
            return []
        except StripeError as exc:
            if exc.status != 404:
                raise
            # The parent was deleted since it was read: its children went with it, and its
            # deletion comes with its events.
            LOGGER.info("Stream %s: parent %s is gone (HTTP 404); no %s to read for it.",
                        feed.label(), parent_obj.get("id"), spec.name)
            return []
        output: Output = []
        shaper = self.shapers[spec.name]
        updated_at = changed if isinstance(changed, int) else None
        for obj in objects:
            for grandchild in member.children:
                if not grandchild.skipped:
                    output.extend(self.records(feed, grandchild, obj, changed))
            if member.selected:
                record = shaper.shape(obj, feed.record_account, updated_at or obj.get("created"))
                if spec.parent_via and spec.parent_param and spec.parent_param not in record and \
                        spec.parent_param in shaper.known:
                    record[spec.parent_param] = parent_obj.get("id")
                output.append((spec.name, record))
        return output

    def _objects(self, feed: Feed, spec: StreamSpec, parent_obj: dict):
        parent_id = parent_obj.get("id")
        embedded = self.embedded(spec, parent_obj)
        cursor, earlier = None, []
        if embedded is not None:
            yield from embedded["data"]
            if not embedded.get("has_more") or not embedded["data"]:
                return
            cursor = embedded["data"][-1]["id"]
            earlier = [obj["id"] for obj in reversed(embedded["data"][:-1]) if obj.get("id")]
        params = spec.list_query(self.expand)
        path = spec.path
        if spec.parent_via == "path":
            path = re.sub(r"\{\w+\}", str(parent_id), path, count=1)
        elif spec.parent_via == "query" and spec.parent_param:
            params.append((spec.parent_param, parent_id))
        for param, field_name in spec.parent_fields:
            value = parent_obj.get(field_name)
            value = value.get("id") if isinstance(value, dict) else value
            if not value:
                return
            params.append((param, value))
        for body in list_pages(self.client, path, params, account=feed.account, endpoint=spec.path,
                               stream=spec.name, starting_after=cursor, earlier=earlier,
                               paginated=spec.paginated):
            self.summary.page(spec.name)
            yield from body.get("data") or []
