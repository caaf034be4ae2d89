"""What the client commands do (see `taskflowd.client_cli` for their arguments and exit
codes): one `AsyncClient` call or two, then a table or JSON on stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from taskflowd.client import (
    DEFAULT_URL,
    UNSET,
    AsyncClient,
    Execution,
    ExecutionStatus,
    NewTask,
    Task,
    TaskflowError,
    TransportError,
    WaitTimeout,
    encode,
)

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_RUN_FAILED = 3
EXIT_TIMEOUT = 4
URL_ENV = "TASKFLOW_URL"
API_KEY_ENV = "TASKFLOW_API_KEY"

_CELL = 48
"""Widest payload or result shown in a table cell."""


# --- output ---------------------------------------------------------------------
def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= _CELL else text[: _CELL - 1] + "…"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _task_rows(tasks: Sequence[Task]) -> str:
    headers = ("ID", "NAME", "TYPE", "STATUS", "HANDLER", "SCHEDULE", "NEXT RUN")
    rows = [
        (
            t.id,
            t.name,
            t.type.value,
            t.status.value,
            t.handler,
            t.cron_expression or "-",
            _when(t.next_run_at),
        )
        for t in tasks
    ]
    return _table(headers, rows)


def _execution_rows(executions: Sequence[Execution]) -> str:
    headers = ("ID", "TASK", "STATUS", "ATTEMPTS", "SCHEDULED FOR", "DURATION MS", "OUTCOME")
    rows = [
        (
            e.id,
            e.task_id,
            e.status.value,
            str(e.attempts),
            _when(e.scheduled_for),
            "-" if e.duration_ms is None else str(e.duration_ms),
            _short(e.error if e.error is not None else e.result),
        )
        for e in executions
    ]
    return _table(headers, rows)


def _emit(as_json: bool, value: Any, table: str) -> None:
    print(json.dumps(encode(value), ensure_ascii=False) if as_json else table)


# --- commands -------------------------------------------------------------------
Command = Callable[[AsyncClient, argparse.Namespace], Awaitable[int]]


async def _list(client: AsyncClient, args: argparse.Namespace) -> int:
    filters = {"status": args.status, "type": args.type, "handler": args.handler}
    if args.all:
        tasks = [t async for t in client.tasks.iter(**filters, search=args.search)]
        _emit(args.json, {"items": tasks, "nextCursor": None}, _task_rows(tasks))
        return 0
    page = await client.tasks.list(**filters, search=args.search, limit=args.limit)
    _emit(args.json, {"items": page.items, "nextCursor": page.next_cursor}, _task_rows(page.items))
    return 0


async def _create(client: AsyncClient, args: argparse.Namespace) -> int:
    spec = NewTask(
        args.name,
        type=args.type,
        handler=args.handler,
        payload=args.payload,
        description=args.description,
        cron_expression=args.cron,
        timezone=args.timezone,
        scheduled_at=args.at,
        delay_ms=args.delay_ms,
        priority=args.priority,
        max_retries=args.max_retries,
        backoff_ms=args.backoff_ms,
        timeout_ms=args.timeout_ms,
        rate_limit=args.rate_limit,
        concurrency=args.concurrency,
        misfire_policy=args.misfire_policy,
    )
    task = await client.tasks.create(spec, idempotency_key=args.idempotency_key)
    _emit(args.json, task, _task_rows([task]))
    return 0


def _outcome(execution: Execution) -> int:
    return 0 if execution.status is ExecutionStatus.COMPLETED else EXIT_RUN_FAILED


async def _wait(client: AsyncClient, execution_id: str, timeout_s: float, as_json: bool) -> int:
    try:
        done = await client.executions.wait(execution_id, timeout_s=timeout_s)
    except WaitTimeout as exc:
        print(f"taskflowd: {exc}", file=sys.stderr)
        _emit(as_json, exc.execution, _execution_rows([exc.execution]))
        return EXIT_TIMEOUT
    _emit(as_json, done, _execution_rows([done]))
    return _outcome(done)


async def _run(client: AsyncClient, args: argparse.Namespace) -> int:
    payload = UNSET if args.payload is None else args.payload
    execution = await client.tasks.run(
        args.task_id,
        payload,
        priority=args.priority,
        run_at=args.at,
        delay_ms=args.delay_ms,
        idempotency_key=args.idempotency_key,
    )
    if args.wait:
        return await _wait(client, execution.id, args.timeout, args.json)
    _emit(args.json, execution, _execution_rows([execution]))
    return 0


async def _pause(client: AsyncClient, args: argparse.Namespace) -> int:
    task = await client.tasks.pause(args.task_id)
    _emit(args.json, task, _task_rows([task]))
    return 0


async def _resume(client: AsyncClient, args: argparse.Namespace) -> int:
    task = await client.tasks.resume(args.task_id)
    _emit(args.json, task, _task_rows([task]))
    return 0


async def _delete(client: AsyncClient, args: argparse.Namespace) -> int:
    await client.tasks.delete(args.task_id)
    _emit(args.json, {"id": args.task_id, "deleted": True}, f"deleted task {args.task_id}")
    return 0


async def _runs_wait(client: AsyncClient, args: argparse.Namespace) -> int:
    return await _wait(client, args.execution_id, args.timeout, args.json)


_ACTIONS: dict[tuple[str, str], Command] = {
    ("task", "list"): _list,
    ("task", "create"): _create,
    ("task", "run"): _run,
    ("task", "pause"): _pause,
    ("task", "resume"): _resume,
    ("task", "delete"): _delete,
    ("runs", "wait"): _runs_wait,
}


def execute(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Run the command `args` names (the server and key from the flags, else from `env`);
    returns the exit code."""
    action = args.task_command if args.command == "task" else args.runs_command
    command = _ACTIONS[(args.command, action)]
    url = args.url or env.get(URL_ENV) or DEFAULT_URL
    api_key = args.api_key or env.get(API_KEY_ENV)
    if not api_key:
        print(f"taskflowd: no API key: pass --api-key or set {API_KEY_ENV}", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = AsyncClient(url, api_key=api_key)
    except ValueError as exc:  # a URL without http:// or https://
        print(f"taskflowd: {exc}", file=sys.stderr)
        return EXIT_USAGE

    async def call() -> int:
        async with client:
            return await command(client, args)

    try:
        return asyncio.run(call())
    except KeyboardInterrupt:
        return 130
    except TransportError as exc:
        print(f"taskflowd: cannot reach {url}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except TaskflowError as exc:
        print(f"taskflowd: {exc}", file=sys.stderr)
        return EXIT_ERROR
