"""The webhook outbox: one delivery row per (notice, matching endpoint), written by a single
INSERT … SELECT in the transaction of the change, so an org with no endpoint costs one
indexed look-up and nothing more."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from taskflowd.store.db import Conn, Database, Step
from taskflowd.store.outbox import Notice
from taskflowd.webhooks.rules import MESSAGE_PREFIX

# A random row id made by the database: the same statement inserts one row per endpoint.
_ROW_ID = {
    "sqlite": "lower(hex(randomblob(16)))",
    "postgresql": "replace(CAST(gen_random_uuid() AS TEXT), '-', '')",
}
_TIME = {"sqlite": "$4", "postgresql": "CAST($4 AS TIMESTAMPTZ)"}
# $1 message id, $2 type, $3 body, $4 time, $5 org, $6 task, $7 workflow, $8 execution.
# An execution's org, task and workflow come from its row when the notice leaves them out.
_INSERT = (
    "INSERT INTO webhook_deliveries (id, endpoint_id, org_id, message_id, event_type, body, "
    "status, attempts, fence, next_attempt_at, created_at, updated_at) "
    "SELECT {row_id}, w.id, w.org_id, CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS TEXT), "
    "'PENDING', 0, 0, {time}, {time}, {time} FROM webhook_endpoints w "
    "WHERE w.status = 'ACTIVE' "
    "AND w.org_id = COALESCE(CAST($5 AS TEXT), "
    "(SELECT e.org_id FROM job_executions e WHERE e.id = CAST($8 AS TEXT))) "
    "AND (w.events LIKE '%,' || CAST($2 AS TEXT) || ',%' OR w.events LIKE '%,*,%') "
    "AND (w.task_id IS NULL OR w.task_id = COALESCE(CAST($6 AS TEXT), "
    "(SELECT e.task_id FROM job_executions e WHERE e.id = CAST($8 AS TEXT)))) "
    "AND (w.workflow_id IS NULL OR w.workflow_id = COALESCE(CAST($7 AS TEXT), "
    "(SELECT t.workflow_id FROM job_executions e JOIN tasks t ON t.id = e.task_id "
    "WHERE e.id = CAST($8 AS TEXT))))"
)
_ANY_ACTIVE = "SELECT 1 FROM webhook_endpoints WHERE status = 'ACTIVE' LIMIT 1"


def message_id() -> str:
    return MESSAGE_PREFIX + uuid.uuid4().hex


def message_body(notice: Notice) -> str:
    """The JSON body receivers get: `{type, timestamp, data}`."""
    return orjson.dumps(
        {"type": notice.type, "timestamp": notice.at.isoformat(), "data": notice.data}
    ).decode()


class WebhookOutbox:
    """`taskflowd.store.outbox.Outbox` for webhook deliveries; `written` is called after
    each write (the sender looks for due deliveries soon after)."""

    def __init__(self, db: Database, written: Callable[[], None] | None = None) -> None:
        self._codec = db.codec
        self._sql = _INSERT.format(row_id=_ROW_ID[db.dialect], time=_TIME[db.dialect])
        self.written = written

    def _rows(self, notices: Sequence[Notice]) -> list[tuple[Any, ...]]:
        return [
            (
                message_id(),
                n.type,
                self._codec.seal_text(message_body(n)),
                n.at,
                n.org_id,
                n.task_id,
                n.workflow_id,
                n.execution_id,
            )
            for n in notices
        ]

    def step(self, notices: Sequence[Notice]) -> Step | None:
        if not notices:
            return None
        self._nudge()
        return Step(self._sql, self._rows(notices), many=True)

    async def write(self, conn: Conn, notices: Iterable[Notice]) -> None:
        # Outcomes are written a batch at a time: with no active endpoint anywhere (a node
        # without webhooks) one look-up replaces a notice, a message body and a statement
        # per outcome.
        if not await conn.fetch(_ANY_ACTIVE):
            return
        rows = self._rows(list(notices))
        if rows:
            await conn.executemany(self._sql, rows)
            self._nudge()

    def _nudge(self) -> None:
        if self.written is not None:
            self.written()
