"""`Idempotency-Key`: a client that retries a create after a lost response gets the first
response again instead of a second task. Keys are per user and kept for 24 hours.

The key and the response are written in the same transaction as what the request
creates (`taskflowd.store.idempotency`), so a crash never leaves a key that blocks its
retries: either the first request committed and its response is replayed, or nothing of
it remains and the retry runs afresh.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import TypeVar

from aiohttp import web

from taskflowd.api.context import CONTEXT_KEY
from taskflowd.api.problems import ApiError
from taskflowd.domain.entities import utcnow
from taskflowd.domain.errors import FieldError, ValidationFailed
from taskflowd.domain.orgs import Actor
from taskflowd.store.base import IdempotencyClaim, IdempotentResponse, Replay

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

T = TypeVar("T")
Rendered = tuple[int, bytes]


def _replayed(first: IdempotentResponse, fingerprint: str) -> web.Response:
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


async def idempotent(
    request: web.Request,
    actor: Actor,
    fingerprint_source: bytes,
    run: Callable[[IdempotencyClaim | None], Awaitable[T]],
    render: Callable[[T], Rendered],
    headers: Callable[[T], Mapping[str, str]] | None = None,
    *,
    look_first: bool = True,
) -> web.Response:
    """Answer with `render(await run(claim))`, once per (org, user, key): `run` must pass the
    claim to the store write that creates its result. A repeated key gets the first
    response again; a key reused for a different request is a 422. Without the header,
    `run` gets no claim. With `look_first`, a stored response is looked for before `run`
    starts; without, `run`'s store write must itself raise Replay before anything else
    it would check (one round trip fewer)."""
    key = request.headers.get(HEADER)
    claim: IdempotencyClaim | None = None
    fingerprint = ""
    # The store renders the result for the record it keeps; the response reuses that.
    last: list[tuple[T, Rendered]] = []
    if key is not None:
        if not _KEY.match(key):
            raise ValidationFailed(
                [FieldError(HEADER, "must be 1 to 255 visible ASCII characters")]
            )
        fingerprint = hashlib.sha256(
            request.method.encode() + b" " + request.path.encode() + b"\n" + fingerprint_source
        ).hexdigest()
        now = utcnow()
        if look_first:
            store = request.app[CONTEXT_KEY].store
            first = await store.get_idempotent(actor.org_id, actor.id, key)
            if first is not None and first.created_at >= now - KEEP:
                return _replayed(first, fingerprint)

        def remember(result: T) -> tuple[int, str]:
            rendered = render(result)
            last[:] = [(result, rendered)]
            return rendered[0], rendered[1].decode()

        claim = IdempotencyClaim(
            actor.org_id, actor.id, key, fingerprint, now, now - KEEP, remember
        )
    try:
        result = await run(claim)
    except Replay as exc:
        return _replayed(exc.response, fingerprint)
    status, body = last[0][1] if last and last[0][0] is result else render(result)
    return web.Response(
        status=status,
        body=body,
        content_type="application/json",
        headers=headers(result) if headers is not None else None,
    )
