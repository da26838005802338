"""Stripe list paging: `limit=100`, then `starting_after=<last id>` while `has_more`.

Lists come newest first. A cursor that does not advance (the same last id twice, or
`has_more` with an empty page) stops with a clear error instead of looping forever.
"""

from __future__ import annotations

from typing import Any, Iterator

from tap_stripe.client import StripeClient, StripeError

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


def list_pages(client: StripeClient, path: str, params: list[tuple[str, Any]], *,
               account: str | None, endpoint: str, stream: str,
               starting_after: str | None = None, paginated: bool = True) -> Iterator[dict]:
    """Yield each page's body (`{"data": [...], "has_more": ...}`) until the list ends."""
    cursor = starting_after
    seen: set[str] = {cursor} if cursor else set()
    while True:
        body = client.get(path, page_query(params, cursor, paginated), account=account,
                          endpoint=endpoint, stream=stream)
        yield body
        cursor = next_cursor(body, seen, stream=stream, path=path, paginated=paginated)
        if cursor is None:
            return
