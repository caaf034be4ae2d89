"""JSON responses (orjson) and conditional GETs with ETag / If-None-Match."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import hdrs, web

from taskflowd.store.base import Page
from taskflowd.store.render import join_objects

if TYPE_CHECKING:
    from pydantic import BaseModel


def plain(data: BaseModel | Any) -> Any:
    """`data` as values orjson writes: a response model by its camelCase aliases."""
    # No model exists before pydantic is loaded, which a node does on first need only.
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(data, pydantic.BaseModel):
        return data.model_dump(mode="python", by_alias=True)
    return data


def page_body(items: Iterable[str], next_cursor: str | None) -> bytes:
    """`{"items": [...], "nextCursor": …}` from JSON objects rendered by the database."""
    cursor = orjson.dumps(next_cursor).decode()
    return f'{{"items":{join_objects(items)},"nextCursor":{cursor}}}'.encode()


def json_response(
    data: BaseModel | Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """`data` (a response model or plain JSON values) as an application/json response."""
    return web.Response(
        body=orjson.dumps(plain(data)),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def no_content() -> web.Response:
    return web.Response(status=204)


def _etag_matches(header: str | None, etag: str) -> bool:
    """Weak comparison (RFC 9110 §13.1.2): `W/` prefixes are ignored; `*` matches."""
    if header is None:
        return False
    candidates = (c.strip().removeprefix("W/") for c in header.split(","))
    return any(c in ("*", etag) for c in candidates)


def etag_response(request: web.Request, data: BaseModel | Any) -> web.Response:
    """A 200 with an ETag of the body, or 304 when If-None-Match already names it."""
    return read_response(request, orjson.dumps(plain(data)))


def etag_of(body: bytes) -> str:
    """A strong ETag of `body` (SHA-256, which CPUs compute in hardware: twice as fast as
    BLAKE2b on a page)."""
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def read_response(request: web.Request, body: bytes, etag: str | None = None) -> web.Response:
    """A read's JSON `body` with an ETag (`etag_of(body)` unless given): 304 when
    If-None-Match already names it. Private: the body depends on who asks; no-cache:
    revalidate before each use."""
    etag = etag or etag_of(body)
    headers = {hdrs.ETAG: etag, hdrs.CACHE_CONTROL: "private, no-cache"}
    if _etag_matches(request.headers.get(hdrs.IF_NONE_MATCH), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def json_bytes(
    body: bytes, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """An application/json response of an already encoded body."""
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


class PageBodies:
    """The body and ETag of each page of a list, made once per page object.

    The store answers a repeated read with the very page it made before while it keeps
    it (`Database.fetch_derived`, `fetch_kept`), so a page seen again is the same object:
    its document and digest are not made again for every request. Up to `size` pages
    are kept (each with a reference, so an id is never mistaken for another's)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._made: dict[int, tuple[Page[str], bytes, str]] = {}

    def response(self, request: web.Request, page: Page[str]) -> web.Response:
        made = self._made.get(id(page))
        if made is None or made[0] is not page:
            body = page_body(page.items, page.next_cursor)
            if len(self._made) >= self.size:
                self._made.clear()
            made = self._made[id(page)] = (page, body, etag_of(body))
        return read_response(request, made[1], made[2])


PAGES_KEY = web.AppKey("taskflowd.api.pages", PageBodies)


def page_response(request: web.Request, page: Page[str]) -> web.Response:
    """A page of JSON objects rendered by the store, as a read's response."""
    return request.app[PAGES_KEY].response(request, page)
