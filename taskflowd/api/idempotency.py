"""`Idempotency-Key`: a client that retries a create after a lost response gets the first
response again instead of a second task. Keys are per user and kept for 24 hours."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp import web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.problems import ApiError
from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.store.base import IdempotentResponse

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_IN_PROGRESS = 0


async def idempotent(
    request: web.Request,
    user: User,
    fingerprint_source: bytes,
    make: Callable[[], Awaitable[web.Response]],
) -> web.Response:
    """Run `make` once per (user, key); replay its 2xx response for a repeated key.

    A key reused for a different request is a 422; a key whose first request is still
    running is a 409. Without the header, `make` simply runs.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return await make()
    if not _KEY.match(key):
        raise ValidationFailed([FieldError(HEADER, "must be 1 to 255 visible ASCII characters")])
    store = request.app[CONTEXT_KEY].store
    fingerprint = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + fingerprint_source
    ).hexdigest()
    now = utcnow()
    reserved = IdempotentResponse(fingerprint, _IN_PROGRESS, "", now)
    if not await store.put_idempotent(user.id, key, reserved):
        first = await store.get_idempotent(user.id, key)
        if first is not None and first.created_at < now - KEEP:
            await store.drop_idempotent(user.id, key)
            return await idempotent(request, user, fingerprint_source, make)
        if first is None or first.status == _IN_PROGRESS:
            raise ApiError(
                409,
                "idempotency_in_progress",
                detail="A request with this Idempotency-Key is still running.",
            )
        if first.fingerprint != fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                detail="This Idempotency-Key was used for a different request.",
            )
        return web.Response(
            status=first.status,
            body=first.body.encode(),
            content_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    try:
        response = await make()
    except BaseException:
        await store.drop_idempotent(user.id, key)
        raise
    body = response.body if isinstance(response.body, bytes) else b""
    await store.finish_idempotent(user.id, key, response.status, body.decode())
    return response
