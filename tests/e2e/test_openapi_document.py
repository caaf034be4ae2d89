"""The OpenAPI document a real daemon (every role) serves is valid OpenAPI 3.1, checked by
openapi-spec-validator, every default in it fits its own schema, and every query string
it allows fits in the request line the server reads. The checks walk whatever the
document holds, so operations added later are covered without a change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from taskflowd.api.server import MAX_REQUEST_LINE_BYTES
from tests.e2e.conftest import Daemons, http_get

Where = tuple[str | int, ...]
# Keywords whose value is a schema, or a list or map of schemas.
_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "$defs", "patternProperties")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    daemons = Daemons(tmp_path_factory.mktemp("openapi"))
    try:
        daemon = daemons.start()
        status, body = http_get(daemon.url("/api/openapi.json"))
        assert status == 200, body
        yield json.loads(body)
    finally:
        daemons.close_all()


def _pointer(*parts: str | int) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _subschemas(schema: Any, where: Where) -> Iterator[tuple[Any, Where]]:
    yield schema, where
    if not isinstance(schema, dict):
        return
    for key in _ONE:
        if isinstance(schema.get(key), dict):
            yield from _subschemas(schema[key], (*where, key))
    for key in _MANY:
        for i, item in enumerate(schema.get(key) or ()):
            yield from _subschemas(item, (*where, key, i))
    for key in _MAP:
        for name, item in (schema.get(key) or {}).items():
            yield from _subschemas(item, (*where, key, name))


def schemas(document: dict[str, Any]) -> Iterator[tuple[Any, Where]]:
    """Every schema in the document with its location: components, and each
    operation's parameters, request body and responses (headers included)."""
    for name, schema in document["components"].get("schemas", {}).items():
        yield from _subschemas(schema, ("components", "schemas", name))
    for name, header in document["components"].get("headers", {}).items():
        yield from _subschemas(header.get("schema"), ("components", "headers", name, "schema"))
    for path, item in document["paths"].items():
        for method, op in item.items():
            here = ("paths", path, method)
            for i, parameter in enumerate(op.get("parameters", ())):
                yield from _subschemas(parameter.get("schema"), (*here, "parameters", i, "schema"))
            bodies = [("requestBody", op.get("requestBody") or {})]
            bodies += [("responses", s, r) for s, r in op.get("responses", {}).items()]
            for *at, part in bodies:
                for media, content in (part.get("content") or {}).items():
                    yield from _subschemas(
                        content.get("schema"), (*here, *at, "content", media, "schema")
                    )


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    problems = [error.message for error in OpenAPIV31SpecValidator(document).iter_errors()]
    assert problems == []


def test_every_default_fits_its_schema(document: dict[str, Any]) -> None:
    problems = []
    checked = 0
    for schema, where in schemas(document):
        if not isinstance(schema, dict) or "default" not in schema:
            continue
        checked += 1
        # The document as the root, so `#/components/...` references resolve.
        validator = Draft202012Validator({**document, "$ref": "#" + _pointer(*where)})
        for error in validator.iter_errors(schema["default"]):
            problems.append(f"{_pointer(*where)}: default {schema['default']!r}: {error.message}")
    assert checked > 0
    assert problems == []


def _longest_text(schema: dict[str, Any], document: dict[str, Any]) -> int:
    """Most bytes one value of `schema` takes in a URL: percent-encoded UTF-8 is at most 12
    bytes per character; numbers and enum values are short."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _longest_text(document["components"]["schemas"][name], document)
    if "enum" in schema:
        return max(len(str(value)) for value in schema["enum"]) * 3
    if schema.get("type") == "string":
        assert "maxLength" in schema, f"an unbounded query parameter: {schema}"
        return int(schema["maxLength"]) * 12
    return 64


def test_every_query_the_document_allows_fits_in_a_request_line(
    document: dict[str, Any],
) -> None:
    # A longer request line is refused by the HTTP parser with a plain-text 400 that no
    # problem document describes; the path and its ids get the room that is left.
    room_for_the_path = 1024
    for path, item in document["paths"].items():
        for method, op in item.items():
            query = [p for p in op.get("parameters", ()) if p["in"] == "query"]
            longest = sum(len(p["name"]) + 2 + _longest_text(p["schema"], document) for p in query)
            assert longest + room_for_the_path <= MAX_REQUEST_LINE_BYTES, (method, path, longest)
