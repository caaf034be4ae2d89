"""/api/v1/users: user administration, ADMIN only.

Declared here; the handlers, in `taskflowd.api.views.users`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation

VIEWS = "taskflowd.api.views.users"
PREFIX = "/api/v1/users"


def install(api: ApiRegistry) -> None:
    admin = Access.ADMIN
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_users",
            "List users, newest first",
            "users",
            admin,
            query="schemas.ListQuery",
            response="schemas.UserList",
        ),
        Operation(
            "POST",
            PREFIX,
            "create_user",
            "Create a user with any role",
            "users",
            admin,
            status=201,
            body="schemas.CreateUserRequest",
            response="schemas.UserOut",
            problems=(409,),
        ),
        Operation(
            "GET",
            f"{PREFIX}/{ID_PARAM}",
            "get_user",
            "One user",
            "users",
            admin,
            response="schemas.UserOut",
            etag=True,
        ),
        Operation(
            "PATCH",
            f"{PREFIX}/{ID_PARAM}",
            "update_user",
            "Change a user's role, activation or name; not your own role or activation",
            "users",
            admin,
            body="schemas.UpdateUserRequest",
            response="schemas.UserOut",
        ),
        Operation(
            "DELETE",
            f"{PREFIX}/{ID_PARAM}",
            "delete_user",
            "Delete (soft) a user and end its sessions; not yourself",
            "users",
            admin,
            status=204,
        ),
    ):
        api.add(operation, VIEWS)
