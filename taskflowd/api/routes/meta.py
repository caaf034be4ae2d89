"""Liveness and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from taskflowd.api.openapi import REGISTRY_KEY, Access, ApiRegistry, Operation
from taskflowd.api.responses import json_bytes, json_response

_HEALTHY = b'{"status":"ok"}'
"""`HealthOut(status="ok")`, encoded once: liveness probes come often."""


async def health(request: web.Request) -> web.Response:
    return json_bytes(_HEALTHY)


async def openapi_document(request: web.Request) -> web.Response:
    return json_response(await request.app[REGISTRY_KEY].served_document())


def install(api: ApiRegistry) -> None:
    api.add(
        Operation(
            "GET",
            "/health",
            health,
            "Liveness: the process answers",
            "meta",
            Access.PUBLIC,
            response="schemas.HealthOut",
            rate_limited=False,
        )
    )
    api.add(
        Operation(
            "GET",
            "/api/openapi.json",
            openapi_document,
            "This OpenAPI 3.1 document",
            "meta",
            Access.PUBLIC,
            response="schemas.OpenApiDocument",
        )
    )
