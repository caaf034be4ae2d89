"""Start-up check of a worker node: every ACTIVE task's handler exists here.

A handler goes missing when its plugin is not installed or fails to load, or when
`shell` is used but disabled. Jobs of such tasks would fail with `unknown_handler` and
land in the dead-letter queue one by one; refusing to start says so once, up front.
"""

from __future__ import annotations

import logging

from taskflowd.domain.enums import TaskStatus
from taskflowd.domain.errors import TaskflowError
from taskflowd.handlers.registry import HandlerRegistry
from taskflowd.store.db import Database

log = logging.getLogger("taskflowd.handlers")

ACTIVE_HANDLERS = (
    "SELECT handler, COUNT(*) AS n FROM tasks "
    "WHERE status = $1 AND deleted_at IS NULL GROUP BY handler"
)


class MissingHandlers(TaskflowError):
    """Active tasks use handlers this node lacks; `str()` is one line an operator can act on."""

    code = "missing_handlers"


async def missing_handlers(db: Database, handlers: HandlerRegistry) -> dict[str, int]:
    """Handlers that ACTIVE tasks use and `handlers` lacks, with how many tasks use each."""
    rows = await db.fetch(ACTIVE_HANDLERS, TaskStatus.ACTIVE.value)
    return {r["handler"]: int(r["n"]) for r in rows if r["handler"] not in handlers}


def describe(missing: dict[str, int], handlers: HandlerRegistry) -> str:
    failed = {f.name: f.reason for f in handlers.plugin_failures}
    parts = []
    for name, count in sorted(missing.items()):
        why = f"; its plugin failed to load: {failed[name]}" if name in failed else ""
        parts.append(f"{name} ({count} task{'s' if count != 1 else ''}{why})")
    return f"active tasks use handlers this node does not have: {', '.join(parts)}"


async def check_handlers(db: Database, handlers: HandlerRegistry, *, allow_missing: bool) -> None:
    """Raise MissingHandlers when ACTIVE tasks use handlers missing here, unless
    `allow_missing`, which logs the same as a warning and lets the node start."""
    missing = await missing_handlers(db, handlers)
    if not missing:
        return
    problem = describe(missing, handlers)
    if allow_missing:
        log.warning("%s; starting anyway (handlers.allow_missing): their jobs will fail", problem)
        return
    raise MissingHandlers(
        f"{problem}. Install or fix them (shell: handlers.shell_enabled), or set "
        "handlers.allow_missing = true to start anyway"
    )
