"""A real HTTP receiver of webhooks, and a Standard Webhooks verifier written here from
the specification (independent of taskflowd's own signing code)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        found: dict[str, Any] = orjson.loads(self.body)
        return found

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


def verified_by(secret: str, got: Received) -> bool:
    """Whether any `v1` signature of `got` is the HMAC-SHA256, keyed with the base64
    part of `secret` after `whsec_`, of `<webhook-id>.<webhook-timestamp>.<body>`."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = b".".join(
        [got.headers["webhook-id"].encode(), got.headers["webhook-timestamp"].encode(), got.body]
    )
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in got.headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


@dataclass
class Receiver:
    """Answers each request with `answer(n)` (n counts from 0): a status, or a number of
    seconds to stall before answering 200 when negative (-10.0: ten seconds; `release`
    ends every stall at once)."""

    answer: Callable[[int], float] = lambda n: 200
    got: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        received = Received(
            {k.lower(): v for k, v in request.headers.items()}, await request.read()
        )
        index = len(self.got)
        self.got.append(received)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.changed.set()
        try:
            answer = self.answer(index)
            if answer < 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.released.wait(), -answer)
                answer = 200
            return web.Response(status=int(answer), text=f"answer {index}")
        finally:
            self.in_flight -= 1

    def release(self) -> None:
        self.released.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.got if r.message["type"] == event_type]
