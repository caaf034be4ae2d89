"""Reading request input: JSON bodies (type, size, syntax, depth) and query strings.

Every check happens before a service sees the input: 415 not JSON, 413 too large
(counted while reading, so chunked bodies are bounded too), 400 malformed or too deeply
nested, 422 when the document does not fit the model (each bad field named by its
camelCase path) or when any string in it, object keys included, holds a NUL character,
which the database cannot store (`taskflowd.domain.text`). Query strings follow the same
NUL rule, names and values.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, TypeVar, cast

import orjson
import pydantic
from aiohttp import hdrs, web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.problems import ApiError
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.domain.text import NUL, NUL_MESSAGE, field_path, nul_errors

MAX_JSON_DEPTH = 32
READ_CHUNK_BYTES = 64 * 1024
# JSON can only carry a NUL as this escape (a raw one is not valid JSON), so a body
# without it needs no walk; one with it (or with the literal text) is walked.
_NUL_ESCAPE = b"\\u0000"

M = TypeVar("M", bound=pydantic.BaseModel)

_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not an accepted field",
    "string_pattern_mismatch": "contains characters that are not allowed here",
}


_PLAIN_JSON = frozenset(("application/json", "application/json; charset=utf-8"))
"""Content-Type values clients send nearly always, accepted without parsing the header
(aiohttp's parse of `request.content_type` is a visible share of a small request)."""


def _is_json(request: web.Request) -> bool:
    raw = request.headers.get(hdrs.CONTENT_TYPE)
    if raw is not None and raw.lower() in _PLAIN_JSON:
        return True
    media = request.content_type
    charset = request.charset
    json_type = media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
    return json_type and charset in (None, "utf-8")


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, refusing (413) as soon as more than `max_bytes` arrive."""
    too_large = ApiError(
        413, "payload_too_large", detail=f"The request body must be at most {max_bytes} bytes."
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(READ_CHUNK_BYTES):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _too_deep(document: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw bytes and the document of a JSON body within the size and nesting limits."""
    if not _is_json(request):
        raise ApiError(
            415,
            "unsupported_media_type",
            detail="Send the body as JSON with Content-Type: application/json (UTF-8).",
        )
    raw = await read_body(request, request.app[CONTEXT_KEY].settings.http.max_body_bytes)
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", detail=f"The body is not valid JSON: {exc}") from None
    if isinstance(document, dict | list) and _too_deep(document, MAX_JSON_DEPTH):
        raise ApiError(
            400,
            "json_too_deep",
            detail=f"The body nests objects and arrays deeper than {MAX_JSON_DEPTH} levels.",
        )
    if _NUL_ESCAPE in raw:
        errors = nul_errors(document)
        if errors:
            raise ValidationFailed(errors)
    return raw, document


async def parse_body(request: web.Request, model: type[M]) -> M:
    """The body validated by `model`; raises ApiError (400/413/415) or ValidationFailed (422)."""
    raw, document = await read_json(request)
    misspelt = _python_names(model, document)
    try:
        parsed = model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(field_errors(exc) + misspelt) from None
    if misspelt:
        raise ValidationFailed(misspelt)
    return parsed


async def parse_optional_body(request: web.Request, model: type[M]) -> M:
    """`parse_body` for an optional body: no body at all (or an empty one without a
    Content-Type) stands for `{}`."""
    if request.content_length == 0 or (not request.body_exists and not request.can_read_body):
        return model.model_validate({})
    if hdrs.CONTENT_TYPE not in request.headers and not await request.read():
        return model.model_validate({})
    return await parse_body(request, model)


def _python_names(
    model: type[pydantic.BaseModel], document: Any, path: tuple[str, ...] = ()
) -> list[FieldError]:
    """Keys spelled as a field's Python name instead of its camelCase alias.

    pydantic silently ignores these even with extra="forbid" (when the alias is present
    too), so they are reported here as the unknown fields they are.
    """
    if not isinstance(document, dict):
        return []
    aliases = {info.alias or name for name, info in model.model_fields.items()}
    errors = []
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if name in document and name not in aliases:
            errors.append(FieldError(field_path((*path, name)), _MESSAGES["extra_forbidden"]))
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, pydantic.BaseModel):
            errors.extend(_python_names(nested, document.get(alias), (*path, alias)))
    return errors


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string validated by `model`; each parameter may appear once.

    Query models are frozen, so the model of a query string seen recently (a client
    polling the same page) is the one made for it then."""
    return cast(M, _validated_query(model, tuple(request.query.items())))


@functools.lru_cache(maxsize=1024)
def _validated_query(
    model: type[pydantic.BaseModel], query: tuple[tuple[str, str], ...]
) -> pydantic.BaseModel:
    values: dict[str, str] = {}
    refused: list[FieldError] = []
    for name in dict.fromkeys(name for name, _ in query):
        given = [value for key, value in query if key == name]
        if NUL in name:
            refused.append(FieldError("$", f"a parameter name {NUL_MESSAGE}"))
            continue
        if len(given) > 1:
            refused.append(FieldError(name, "must be given only once"))
        if any(NUL in value for value in given):
            refused.append(FieldError(name, NUL_MESSAGE))
        values[name] = given[0]
    if refused:
        raise ValidationFailed(refused)
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as exc:
        raise ValidationFailed(field_errors(exc)) from None


def field_errors(exc: pydantic.ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = _MESSAGES.get(error["type"], error["msg"]).removeprefix("Value error, ")
        errors.append(FieldError(field_path(error["loc"]), message))
    return errors
