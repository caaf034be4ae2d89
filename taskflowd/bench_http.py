"""Helper processes of `taskflowd bench --api`, run as `python -m taskflowd.bench_http`:

- `bare`: the reference, a bare aiohttp handler on uvloop answering `GET /health` with a
  small JSON body; prints `listening on PORT` and serves until SIGTERM or SIGINT.
- `load`: the built-in load generator (used when wrk is not installed): prints `ready`
  once set up, starts on a line on stdin (so several processes measure the same
  window), keeps `--connections` requests in flight for `--duration` seconds over
  keep-alive connections and prints `{"ok": n, "other": n, "errors": n, "seconds": s}`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

import aiohttp
import orjson

_HEALTH = b'{"status":"ok"}'


async def serve_bare() -> None:
    from aiohttp import web

    async def health(request: web.Request) -> web.Response:
        return web.Response(body=_HEALTH, content_type="application/json")

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {runner.addresses[0][1]}", flush=True)
    await stop.wait()
    await runner.cleanup()


async def _worker(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    body: bytes | None,
    deadline: float,
    counts: dict[str, int],
) -> None:
    while time.monotonic() < deadline:
        try:
            async with session.request(method, url, data=body) as response:
                await response.read()
                key = "ok" if 200 <= response.status < 300 else "other"
        except (aiohttp.ClientError, TimeoutError):
            key = "errors"
        counts[key] += 1


async def generate_load(
    method: str, url: str, headers: dict[str, str], body: bytes | None, connections: int,
    duration_s: float,
) -> dict[str, float]:  # fmt: skip
    """Requests answered in `duration_s` with `connections` in flight."""
    counts = {"ok": 0, "other": 0, "errors": 0}
    connector = aiohttp.TCPConnector(limit=connections)
    # Like wrk: no Accept-Encoding, so nobody spends time compressing.
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, skip_auto_headers=("Accept-Encoding",)
    ) as session:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started = time.monotonic()
        deadline = started + duration_s
        await asyncio.gather(
            *(_worker(session, method, url, body, deadline, counts) for _ in range(connections))
        )
        elapsed = time.monotonic() - started
    return {**counts, "seconds": elapsed}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m taskflowd.bench_http")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("bare", help="serve the reference handler")
    load = sub.add_parser("load", help="generate load against one URL")
    load.add_argument("url")
    load.add_argument("--method", default="GET")
    load.add_argument("--header", action="append", default=[], help='"Name: value"')
    load.add_argument("--body", help="request body (text)")
    load.add_argument("--connections", type=int, default=16)
    load.add_argument("--duration", type=float, default=10.0, help="seconds")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import uvloop

    if args.mode == "bare":
        uvloop.run(serve_bare())
        return 0
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = args.body.encode() if args.body is not None else None
    result = uvloop.run(
        generate_load(args.method, args.url, headers, body, args.connections, args.duration)
    )
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
