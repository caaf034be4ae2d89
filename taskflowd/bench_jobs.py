"""Job bodies for `taskflowd bench --handler`: `noop` (the built-in `echo`), `tcp` (one
round trip to an echo server the bench runs itself) and `redis` (one INCR, the job body of
the peer benchmark in ../shared/bench-peers). Real jobs wait on the network, so a drain of
them shows what a worker costs per job rather than how fast `echo` returns."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import HandlerSpec, JobContext
from taskflowd.handlers.registry import HandlerRegistry


def _any_payload(payload: JSON) -> list[FieldError]:
    return []


class _EchoServer:
    """A line echo server on 127.0.0.1 and a pool of client connections to it."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def start(self) -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while line := await reader.readline():
                    writer.write(line)
            writer.close()

        self._server = await asyncio.start_server(echo, "127.0.0.1", 0)

    async def round_trip(self, payload: JSON, ctx: JobContext) -> JSON:
        assert self._server is not None
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            port = self._server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"ping\n")
        await writer.drain()
        answer = await reader.readline()
        self._idle.append((reader, writer))
        return answer.decode().strip()

    async def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def bench_registry(kind: str, redis_url: str) -> tuple[HandlerRegistry, str]:
    """A registry holding the job body `kind`, and the handler name its jobs use."""
    if kind == "noop":
        return _registry([], []), "echo"
    closers: list[Callable[[], Awaitable[None]]] = []
    if kind == "tcp":
        server = _EchoServer()
        await server.start()
        run, closers = server.round_trip, [server.close]
    else:
        from redis.asyncio import Redis

        client = Redis.from_url(redis_url)
        key = f"taskflowd:bench:{uuid.uuid4().hex}"

        async def incr(payload: JSON, ctx: JobContext) -> JSON:
            return int(await client.incr(key))

        async def close() -> None:
            await client.delete(key)
            await client.aclose()

        run, closers = incr, [close]
    spec = HandlerSpec(f"bench_{kind}", run, _any_payload, admin_only=False)
    return _registry([spec], closers), spec.name


def _registry(
    extra: list[HandlerSpec], closers: list[Callable[[], Awaitable[None]]]
) -> HandlerRegistry:
    built = HandlerRegistry.build(
        shell_enabled=False,
        http_allow_private=False,
        http_allowed_networks=(),
        http_timeout_s=5,
        http_max_response_bytes=1024,
        shell_max_output_bytes=1024,
        load_plugins=False,
    )
    specs = [built.get(name) for name in built.names()]
    return HandlerRegistry([*specs, *extra], closers=[built.close, *closers])
