"""`taskflowd bench --audit N`: N audit events appended in batches through the journal,
then the chain verified by the function `taskflowd audit verify` runs.

The chain is append-only, so the events never go into the configured database: always
into a temporary SQLite file, and, when the configured database is PostgreSQL, also into
a temporary database created on that server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from taskflowd.audit.model import ActorRef, AuditEvent
from taskflowd.audit.records import AuditRecords
from taskflowd.bench_measure import cpu_s
from taskflowd.config import Settings
from taskflowd.store import open_store

_BATCH = 5000


def _events(count: int, org_id: str, actor: ActorRef) -> list[AuditEvent]:
    return [
        AuditEvent(
            action="task.updated",
            actor=actor,
            org_id=org_id,
            target_type="task",
            target_id=str(uuid.uuid4()),
            changes={"status": ["ACTIVE", "PAUSED"], "priority": [0, i % 10]},
            request_id=uuid.uuid4().hex,
            ip="127.0.0.1",
            user_agent="taskflowd-bench",
        )
        for i in range(count)
    ]


async def _measure(url: str, count: int) -> list[tuple[str, str]]:
    store = open_store(url)
    await store.start()
    try:
        actor = ActorRef("user", str(uuid.uuid4()), "bench@bench.invalid")
        org_id = str(uuid.uuid4())
        began, cpu = time.perf_counter(), cpu_s()
        for start in range(0, count, _BATCH):
            events = _events(min(_BATCH, count - start), org_id, actor)
            async with store.db.transaction() as conn:
                await store.journal.append(conn, events)
        append_s, append_cpu = time.perf_counter() - began, cpu_s() - cpu
        began, cpu = time.perf_counter(), cpu_s()
        verdict = await AuditRecords(store.db).verify()
        verify_s, verify_cpu = time.perf_counter() - began, cpu_s() - cpu
    finally:
        await store.stop()
    if not verdict.ok or verdict.checked != count:
        raise RuntimeError(f"audit verify did not pass over the bench's events: {verdict}")
    backend = url.split(":", 1)[0]
    return [
        (f"{backend}: append {count:,} events (events/s)", f"{count / append_s:,.0f}"),
        (f"{backend}: append, process CPU per event (µs)", f"{append_cpu / count * 1e6:,.1f}"),
        (f"{backend}: audit verify of {count:,} events (s)", f"{verify_s:,.2f}"),
        (f"{backend}: audit verify (events/s)", f"{count / verify_s:,.0f}"),
        (f"{backend}: audit verify, process CPU (s)", f"{verify_cpu:,.2f}"),
        (
            f"{backend}: audit verify of 1,000,000 at this rate (s)",
            f"{1_000_000 / count * verify_s:,.1f}",
        ),
    ]


async def _in_postgres(url: str, count: int) -> list[tuple[str, str]]:
    """`_measure` in a database made for it on the server of `url`, dropped after."""
    import asyncpg

    name = f"taskflowd_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            parts = urlsplit(url)
            return await _measure(urlunsplit(parts._replace(path=f"/{name}")), count)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        await admin.close()


def run_audit_bench(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.daemon import run_loop

    count = args.audit
    with tempfile.TemporaryDirectory(prefix="taskflowd-bench-") as temp:
        rows = run_loop(_measure(f"sqlite:///{Path(temp) / 'audit.db'}", count))
    if settings.database.split(":", 1)[0] in ("postgresql", "postgres"):
        rows += run_loop(_in_postgres(settings.database, count))
    print(f"taskflowd bench — audit trail, {count:,} events appended in batches of {_BATCH:,}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>16}")
    return 0
