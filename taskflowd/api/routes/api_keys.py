"""/api/v1/api-keys: the caller's API keys (create: shown once, list, revoke).

Declared here; the handlers, in `taskflowd.api.views.api_keys`, are imported on the first
request (start-up time, issue 12)."""

from __future__ import annotations

from taskflowd.api.openapi import ID_PARAM, Access, ApiRegistry, Operation

VIEWS = "taskflowd.api.views.api_keys"
PREFIX = "/api/v1/api-keys"


def install(api: ApiRegistry) -> None:
    user = Access.USER
    for operation in (
        Operation(
            "GET",
            PREFIX,
            "list_api_keys",
            "Your API keys that are not revoked, newest first",
            "api-keys",
            user,
            query="schemas.ListQuery",
            response="views.api_keys.ApiKeyList",
            etag=True,
        ),
        Operation(
            "POST",
            PREFIX,
            "create_api_key",
            "Create an API key; the response shows the key once (not with an API key)",
            "api-keys",
            user,
            status=201,
            body="views.api_keys.ApiKeyCreate",
            response="views.api_keys.NewApiKeyOut",
            problems=(403, 409),
        ),
        Operation(
            "DELETE",
            f"{PREFIX}/{ID_PARAM}",
            "revoke_api_key",
            "Revoke an API key, on every node at once (admins: anyone's)",
            "api-keys",
            user,
            status=204,
        ),
    ):
        api.add(operation, VIEWS)
