"""The route registry: each operation is declared once, with its models, access and limits.

`ApiRegistry.add` mounts the handler on the aiohttp router and records the operation;
the security middleware enforces the declared access from the same record, and
`document()` turns the records into the OpenAPI 3.1 document, listing every problem
response an operation can produce.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, TypeAlias

from aiohttp import web
from aiohttp.typedefs import Handler

from taskflowd.api.problems import PROBLEM_CONTENT_TYPE

if TYPE_CHECKING:
    from pydantic import BaseModel
    from pydantic.json_schema import JsonSchemaMode

    _Refs: TypeAlias = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]
    Model: TypeAlias = type[BaseModel] | str
    """A model, or its name as "module.Class" under `taskflowd.api`: pydantic and the
    models are imported when the document is first built, not to start (issue 12)."""

_REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::([^}]*))?\}")
ID_PARAM = "{id:[0-9A-Za-z-]+}"
"""A path segment for record ids; anything else is a 404 before a handler runs."""
_ALWAYS = (500, 503)
_BODY_PROBLEMS = (400, 413, 415, 422)
_ALWAYS_HEADERS = ("X-Request-Id",)
_RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
_PROBLEM_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {"description": "The request's id (echoed or generated)"},
    "RateLimit-Limit": {"description": "Requests allowed per minute"},
    "RateLimit-Remaining": {"description": "Requests left right now"},
    "RateLimit-Reset": {"description": "Seconds until the quota is whole again"},
    "Retry-After": {"description": "Seconds to wait before trying again"},
    "WWW-Authenticate": {"description": 'Bearer challenge, error="invalid_token" if one was sent'},
    "ETag": {"description": "Entity tag of the representation"},
}
_HEADER_SCHEMAS = {"X-Request-Id": "string", "WWW-Authenticate": "string", "ETag": "string"}


class Access(StrEnum):
    PUBLIC = "public"
    USER = "user"
    """Any signed-in, active user."""
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Operation:
    """One route: what it accepts and answers, who may call it, and whether it is limited.

    `problems` lists statuses beyond those implied by the other fields (body → 400, 413,
    415, 422; query → 422; path parameters → 404; USER/ADMIN → 401 (+ 403 for ADMIN);
    rate limited → 429; always 500 and 503).
    """

    method: str
    path: str
    handler: Handler | str
    """The handler, or its name in the module given to `ApiRegistry.add`."""
    summary: str
    tag: str
    access: Access
    status: int = 200
    body: Model | None = None
    query: Model | None = None
    response: Model | None = None
    problems: tuple[int, ...] = ()
    rate_limited: bool = True
    etag: bool = False
    description: str = ""
    body_required: bool = True
    streams: tuple[str, Model] | None = None
    """Another media type the success response may have: (type, model of each line)."""

    @property
    def operation_id(self) -> str:
        return self.handler if isinstance(self.handler, str) else self.handler.__name__

    @property
    def path_params(self) -> list[tuple[str, str]]:
        """(name, regex) of each path parameter; the regex is "" when there is none."""
        return _PATH_PARAM.findall(self.path)

    def problem_statuses(self) -> list[int]:
        statuses = {*_ALWAYS, *self.problems}
        if self.body is not None:
            statuses.update(_BODY_PROBLEMS)
        if self.query is not None:
            statuses.add(422)
        if self.path_params:
            statuses.add(404)
        if self.access is not Access.PUBLIC:
            statuses.add(401)
        if self.access is Access.ADMIN:
            statuses.add(403)
        if self.rate_limited:
            statuses.add(429)
        return sorted(statuses)


class ApiRegistry:
    """The operations of one application, keyed by method and route template."""

    def __init__(self, app: web.Application, title: str, version: str) -> None:
        self.app = app
        self.title = title
        self.version = version
        self._operations: dict[tuple[str, str], Operation] = {}
        self._document: dict[str, Any] | None = None

    def add(self, operation: Operation, views: str | None = None) -> None:
        """Mount `operation.handler` and record the operation; duplicates are an error.

        A handler given by name is looked up in the module `views`, imported (off the event
        loop) on the route's first request: a node loads the handlers and request and
        response models of a resource only once it is used (start-up time, issue 12).
        """
        key = (operation.method.upper(), operation.path)
        if key in self._operations:
            raise ValueError(f"{key[0]} {key[1]} is registered twice")
        if any(op.operation_id == operation.operation_id for op in self._operations.values()):
            raise ValueError(f"operation id {operation.operation_id!r} is used twice")
        handler = operation.handler
        if isinstance(handler, str):
            if views is None:
                raise ValueError(f"handler {handler!r} is a name: give the module it is in")
            handler = deferred(views, handler)
        route = self.app.router.add_route(key[0], operation.path, handler)
        canonical = route.resource.canonical if route.resource else operation.path
        self._operations[(key[0], canonical)] = operation
        self._document = None

    def lookup(self, request: web.Request) -> Operation | None:
        """The operation the request was routed to; None for unregistered or unmatched."""
        route = request.match_info.route
        if route.resource is None:
            return None
        return self._operations.get((route.method, route.resource.canonical))

    @property
    def operations(self) -> list[Operation]:
        return list(self._operations.values())

    def document(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of every registered operation (built once)."""
        if self._document is None:
            self._document = build_document(self.operations, self.title, self.version)
        return self._document

    async def served_document(self) -> dict[str, Any]:
        """`document()` for a request: built, the first time, in a thread, since it
        imports every schema module and builds every schema (0.3 to 0.5 s of CPU)."""
        if self._document is None:
            return await asyncio.to_thread(self.document)
        return self._document


def deferred(views: str, name: str) -> Handler:
    """The handler `name` of the module `views`, imported off the event loop on the
    route's first request."""
    loaded: list[Handler] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if not loaded:
            module = await asyncio.to_thread(importlib.import_module, views)
            loaded.append(getattr(module, name))
        return await loaded[0](request)

    handler.__name__ = handler.__qualname__ = name
    return handler


def _model(ref: Model) -> type[BaseModel]:
    if isinstance(ref, str):
        module, _, name = ref.rpartition(".")
        model: type[BaseModel] = getattr(importlib.import_module(f"taskflowd.api.{module}"), name)
        return model
    return ref


def _models(
    operations: Iterable[Operation], problem: type[BaseModel]
) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(problem, "serialization")]
    for op in operations:
        for model in (op.body, op.query):
            if model is not None:
                wanted.append((_model(model), "validation"))
        if op.response is not None:
            wanted.append((_model(op.response), "serialization"))
        if op.streams is not None:
            wanted.append((_model(op.streams[1]), "serialization"))
    return list(dict.fromkeys(wanted))


def build_document(operations: list[Operation], title: str, version: str) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    from taskflowd.api.schemas import Problem

    refs, top = models_json_schema(_models(operations, Problem), by_alias=True, ref_template=_REF)
    problem = {PROBLEM_CONTENT_TYPE: {"schema": refs[(Problem, "serialization")]}}
    schemas: dict[str, Any] = top.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        path = _PATH_PARAM.sub(r"{\1}", op.path)
        paths.setdefault(path, {})[op.method.lower()] = _operation(op, refs, schemas, problem)
    headers = {
        name: {**spec, "schema": {"type": _HEADER_SCHEMAS.get(name, "integer")}}
        for name, spec in _HEADERS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "headers": headers,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _operation(
    op: Operation, ref_of: _Refs, schemas: dict[str, Any], problem: dict[str, Any]
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "security": [] if op.access is Access.PUBLIC else [{"bearerAuth": []}],
        "responses": _responses(op, ref_of, problem),
    }
    if op.description:
        doc["description"] = op.description
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _path_schema(pattern)}
        for name, pattern in op.path_params
    ]
    if op.query is not None:
        parameters.extend(_query_parameters(ref_of[(_model(op.query), "validation")], schemas))
    if op.etag:
        parameters.append({"name": "If-None-Match", "in": "header", "schema": {"type": "string"}})
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": ref_of[(_model(op.body), "validation")]}},
        }
    return doc


def _path_schema(pattern: str) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^{pattern}$"} if pattern else {"type": "string"}


def _parameter_schema(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or text, never null: pydantic's `X | None = None`
    gives a null variant and a `"default": null`, which OpenAPI 3.1 would have to
    check against the parameter's own type (and refuse). Both go."""
    schema = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
    variants = [v for v in schema.pop("anyOf", ()) if v != {"type": "null"}]
    if len(variants) == 1:
        return {**variants[0], **schema}
    if variants:
        schema["anyOf"] = variants
    return schema


def _query_parameters(ref: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """The parameters of a query model, whose component schema is cleaned the same way."""
    schema = schemas[ref["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", ()))
    properties = {name: _parameter_schema(p) for name, p in schema.get("properties", {}).items()}
    schema["properties"] = properties
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop}
        for name, prop in properties.items()
    ]


def _header_refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _responses(op: Operation, ref_of: _Refs, problem: dict[str, Any]) -> dict[str, Any]:
    common = (*_ALWAYS_HEADERS, *(_RATE_HEADERS if op.rate_limited else ()))
    success: dict[str, Any] = {
        "description": HTTPStatus(op.status).phrase,
        "headers": _header_refs(*common, *(("ETag",) if op.etag else ())),
    }
    if op.response is not None:
        success["content"] = {
            "application/json": {"schema": ref_of[(_model(op.response), "serialization")]}
        }
    if op.streams is not None:
        media_type, line = op.streams
        success.setdefault("content", {})[media_type] = {
            "schema": ref_of[(_model(line), "serialization")]
        }
    responses: dict[str, Any] = {str(op.status): success}
    if op.etag:
        responses["304"] = {
            "description": "Not Modified: If-None-Match matched the current ETag",
            "headers": _header_refs(*common, "ETag"),
        }
    for status in op.problem_statuses():
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "headers": _header_refs(*common, *_PROBLEM_HEADERS.get(status, ())),
            "content": problem,
        }
    return responses


REGISTRY_KEY = web.AppKey("taskflowd.api.registry", ApiRegistry)
