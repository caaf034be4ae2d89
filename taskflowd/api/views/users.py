"""/api/v1/users: user administration, ADMIN only.

The handlers; the routes are declared in `taskflowd.api.routes.users`, which has them
imported on the first request to one of its routes."""

from __future__ import annotations

from aiohttp import hdrs, web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.responses import etag_response, json_response, no_content
from taskflowd.api.routes.users import PREFIX
from taskflowd.api.schemas import (
    CreateUserRequest,
    ListQuery,
    UpdateUserRequest,
    UserList,
    user_out,
)
from taskflowd.api.security import current_user
from taskflowd.api.validation import parse_body, parse_query
from taskflowd.auth.service import AuthService, NewUser, UserChanges


def _auth(request: web.Request) -> AuthService:
    return request.app[CONTEXT_KEY].auth


async def list_users(request: web.Request) -> web.Response:
    query = parse_query(request, ListQuery)
    page = await _auth(request).list_users(query.limit, query.cursor)
    return json_response(
        UserList(items=[user_out(u) for u in page.items], next_cursor=page.next_cursor)
    )


async def get_user(request: web.Request) -> web.Response:
    user = await _auth(request).get_user(request.match_info["id"])
    return etag_response(request, user_out(user))


async def create_user(request: web.Request) -> web.Response:
    body = await parse_body(request, CreateUserRequest)
    user = await _auth(request).create_user(
        NewUser(
            body.email, body.password, body.first_name, body.last_name, body.role, body.is_active
        ),
        current_user(request),
    )
    return json_response(user_out(user), status=201, headers={hdrs.LOCATION: f"{PREFIX}/{user.id}"})


async def update_user(request: web.Request) -> web.Response:
    body = await parse_body(request, UpdateUserRequest)
    changes = UserChanges(body.role, body.is_active, body.first_name, body.last_name)
    user = await _auth(request).update_user(
        current_user(request), request.match_info["id"], changes
    )
    return json_response(user_out(user))


async def delete_user(request: web.Request) -> web.Response:
    await _auth(request).delete_user(current_user(request), request.match_info["id"])
    return no_content()
