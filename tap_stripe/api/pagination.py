"""Stripe list paging: `limit=100`, then `starting_after=<last id>` while `has_more`.

Lists come newest first. A cursor that does not advance (the same last id twice, or
`has_more` with an empty page) stops with a clear error instead of looping forever. A cursor
whose object was deleted mid-run is replaced by the object before it (`get_page`).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from tap_stripe.api.client import StripeClient
from tap_stripe.errors import StripeError

PAGE_SIZE = 100


def page_query(params: list[tuple[str, Any]], cursor: str | None, paginated: bool = True) -> list[tuple[str, Any]]:
    """The query of one page: the list's parameters, `limit` and `starting_after`."""
    query = list(params)
    if paginated:
        query.append(("limit", PAGE_SIZE))
        if cursor:
            query.append(("starting_after", cursor))
    return query


def next_cursor(body: dict, seen: set[str], *, stream: str, path: str, paginated: bool = True) -> str | None:
    """The `starting_after` of the page after `body`, or None when the list ended. `seen`
    holds the cursors used so far: a repeated one is a loop, and stops with an error."""
    data = body.get("data") or []
    if not paginated or not body.get("has_more"):
        return None
    if not data:
        raise StripeError(f"stream {stream}: GET {path} said has_more with an empty page; "
                          "stopping instead of looping", path=path)
    cursor = data[-1]["id"]
    if cursor in seen:
        raise StripeError(f"stream {stream}: GET {path} returned cursor {cursor} twice; "
                          "stopping instead of looping", path=path)
    seen.add(cursor)
    return cursor


def get_page(client: StripeClient, path: str, params: list[tuple[str, Any]], cursor: str | None,
             earlier: list[str], *, account: str | None, endpoint: str, stream: str,
             paginated: bool = True) -> dict:
    """One page after `cursor`. When the object `cursor` names was deleted since its page
    was read, Stripe answers 404 for `starting_after`: the page then goes on from the
    object before it on the same page (`earlier`, nearest first, consumed), so nothing
    after the deleted object is skipped."""
    while True:
        try:
            return client.get(path, page_query(params, cursor, paginated), account=account,
                              endpoint=endpoint, stream=stream)
        except StripeError as exc:
            if not (cursor and earlier and exc.status == 404 and exc.error.get("param") == "starting_after"):
                raise
            cursor = earlier.pop(0)


def earlier_cursors(body: dict, previous: str | None) -> list[str]:
    """The cursors to fall back on, nearest first, when the last object of `body` is deleted
    before the next page is read: the page's other objects, then the cursor that read it."""
    data = body.get("data") or []
    return [obj["id"] for obj in reversed(data[:-1]) if obj.get("id")] + ([previous] if previous else [])


def list_pages(client: StripeClient, path: str, params: list[tuple[str, Any]], *,
               account: str | None, endpoint: str, stream: str,
               starting_after: str | None = None, paginated: bool = True,
               earlier: list[str] | None = None) -> Generator[dict, None, None]:
    """Yield each page's body (`{"data": [...], "has_more": ...}`) until the list ends.
    `earlier`: for a first cursor given by the caller, the ids before it on its page."""
    cursor = starting_after
    fallbacks = list(earlier or [])
    seen: set[str] = {cursor} if cursor else set()
    while True:
        body = get_page(client, path, params, cursor, fallbacks, account=account, endpoint=endpoint,
                        stream=stream, paginated=paginated)
        yield body
        previous = cursor
        cursor = next_cursor(body, seen, stream=stream, path=path, paginated=paginated)
        if cursor is None:
            return
        fallbacks = earlier_cursors(body, previous)
