"""The client commands' command line: `taskflowd task list|create|run|pause|resume|delete`
and `taskflowd runs wait`, which talk to a server through `taskflowd.client`.

They need no daemon configuration and no database: only the server's URL (`--url`, else
`TASKFLOW_URL`, else http://127.0.0.1:8080) and an API key (`--api-key`, else
`TASKFLOW_API_KEY`). Output is a table, or JSON with `--json`. Exit codes: 0 done,
1 the server refused or could not be reached (one line on stderr says why), 2 bad usage,
3 the run ended FAILED or CANCELLED, 4 waiting timed out. This module only builds the
parser; the client itself is imported when a client command runs
(`taskflowd.client_commands`), so the daemon's commands do not load it.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from taskflowd.domain.enums import MisfirePolicy, TaskStatus, TaskType

COMMANDS = frozenset({"task", "runs"})


def _connection_args() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help="server URL (default $TASKFLOW_URL, else the local one)")
    common.add_argument("--api-key", help="API key tfk_… (default $TASKFLOW_API_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return common


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc})") from None


def _time_arg(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. +00:00 or Z")
    return when


def _add_task_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    task = sub.add_parser("task", help="list, create, run, pause, resume and delete tasks")
    actions = task.add_subparsers(dest="task_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=[common], help="list tasks, newest first")
    listing.add_argument("--status", type=TaskStatus, choices=list(TaskStatus))
    listing.add_argument("--type", type=TaskType, choices=list(TaskType))
    listing.add_argument("--handler")
    listing.add_argument("--search", help="part of the name")
    listing.add_argument("--limit", type=int, default=50, help="tasks per page (default 50)")
    listing.add_argument("--all", action="store_true", help="every page, not only the first")

    create = actions.add_parser("create", parents=[common], help="create a task")
    create.add_argument("name")
    create.add_argument("--type", type=TaskType, choices=list(TaskType))
    create.add_argument("--handler", help="job kind (default echo)")
    create.add_argument("--payload", type=_json_arg, help="JSON payload")
    create.add_argument("--description")
    create.add_argument("--cron", help="cron expression (5 fields, or 6 with seconds)")
    create.add_argument("--timezone", help="IANA time zone of the cron expression")
    create.add_argument("--at", type=_time_arg, help="when a one-time task runs (ISO 8601)")
    create.add_argument("--delay-ms", type=int, help="run this long after creation")
    create.add_argument("--priority", type=int, help="0-10, higher first")
    create.add_argument("--max-retries", type=int)
    create.add_argument("--backoff-ms", type=int)
    create.add_argument("--timeout-ms", type=int, help="per-attempt timeout")
    create.add_argument("--rate-limit", type=int, help="starts per minute")
    create.add_argument("--concurrency", type=int, help="runs at once")
    create.add_argument("--misfire-policy", type=MisfirePolicy, choices=list(MisfirePolicy))
    create.add_argument("--idempotency-key", help="default: a random one")

    run = actions.add_parser("run", parents=[common], help="queue a run of a task")
    run.add_argument("task_id")
    run.add_argument("--payload", type=_json_arg, help="JSON payload (default: the task's)")
    run.add_argument("--priority", type=int)
    when = run.add_mutually_exclusive_group()
    when.add_argument("--at", type=_time_arg, help="when to run (ISO 8601)")
    when.add_argument("--delay-ms", type=int)
    run.add_argument("--idempotency-key", help="default: a random one")
    run.add_argument("--wait", action="store_true", help="wait for the outcome (exit 3: failed)")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits")

    for name, what in (("pause", "pause a task"), ("resume", "resume a paused task")):
        change = actions.add_parser(name, parents=[common], help=what)
        change.add_argument("task_id")
    delete = actions.add_parser("delete", parents=[common], help="delete a task")
    delete.add_argument("task_id")


def add_commands(sub: Any) -> None:
    """Add `task …` and `runs …` to the subcommands `sub` of the main parser."""
    common = _connection_args()
    _add_task_commands(sub, common)
    runs = sub.add_parser("runs", help="follow runs (executions)")
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    wait = actions.add_parser(
        "wait", parents=[common], help="wait until a run is final (exit 3: it failed)"
    )
    wait.add_argument("execution_id")
    wait.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")


def main(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run the client command `args` names; returns the exit code."""
    from taskflowd import client_commands

    return client_commands.execute(args, os.environ if env is None else env)
