"""/api/v1/api-keys: the caller's API keys (create: shown once, list, revoke).

The handlers; the routes are declared in `taskflowd.api.routes.api_keys`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import orjson
from aiohttp import web
from pydantic import AwareDatetime, Field, StringConstraints

from taskflowd.api.acting import current_actor
from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.problems import ApiError
from taskflowd.api.responses import json_bytes, no_content, page_body, read_response
from taskflowd.api.schemas import LINE, ListQuery, RequestModel, ResponseModel
from taskflowd.api.security import current_principal
from taskflowd.api.shapes import as_dict, render, shape_of
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.auth.api_keys import MAX_NAME_LENGTH
from taskflowd.auth.service import AuthService


class ApiKeyCreate(RequestModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=LINE)]
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working; never when left out"
    )


class ApiKeyOut(ResponseModel):
    id: str
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute")


class NewApiKeyOut(ApiKeyOut):
    key: str = Field(description="The key itself: shown this once, never again")


class ApiKeyList(ResponseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None


API_KEY_SHAPE = shape_of(ApiKeyOut)


def _auth(request: web.Request) -> AuthService:
    return request.app[CONTEXT_KEY].auth


async def create_api_key(request: web.Request) -> web.Response:
    body = await parse_body(request, ApiKeyCreate)
    if current_principal(request).api_key_id is not None:
        raise ApiError(
            403,
            "forbidden",
            detail="An API key cannot create API keys; sign in with your password to do so.",
        )
    key, raw = await _auth(request).api_keys.create(
        await current_actor(request), body.name, body.expires_at
    )
    created = orjson.dumps({**as_dict(API_KEY_SHAPE, key), "key": raw})
    return json_bytes(created, status=201)


async def list_api_keys(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _auth(request).api_keys.list(
        await current_actor(request), query.limit, query.cursor
    )
    items = [render(API_KEY_SHAPE, key).decode() for key in page.items]
    return read_response(request, page_body(items, page.next_cursor))


async def revoke_api_key(request: web.Request) -> web.Response:
    await _auth(request).api_keys.revoke(await current_actor(request), request.match_info["id"])
    return no_content()
