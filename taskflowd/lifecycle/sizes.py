"""How many rows each table holds: exact on SQLite, the planner's estimate on PostgreSQL
(`pg_class.reltuples`, kept current by autovacuum and ANALYZE, read in microseconds)."""

from __future__ import annotations

from taskflowd.store.db import Database

TABLES = (
    "users",
    "tasks",
    "job_executions",
    "retry_history",
    "dead_letter_jobs",
    "idempotency_keys",
    "refresh_tokens",
    "api_keys",
    "nodes",
    "workflows",
    "workflow_runs",
    "workflow_steps",
    "audit_events",
)

_ESTIMATES = (
    "SELECT c.relname AS t, c.reltuples::bigint AS n FROM pg_class c "
    "JOIN pg_namespace s ON s.oid = c.relnamespace "
    "WHERE s.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY($1::text[])"
)


async def table_rows(db: Database) -> dict[str, int]:
    """Rows per table, by table name."""
    if db.dialect == "postgresql":
        found = await db.fetch(_ESTIMATES, list(TABLES))
        # reltuples is -1 until a table was first vacuumed or analysed.
        estimates = {r["t"]: max(0, int(r["n"])) for r in found}
        return {t: estimates.get(t, 0) for t in TABLES}
    counts = " UNION ALL ".join(f"SELECT '{t}' AS t, COUNT(*) AS n FROM {t}" for t in TABLES)
    return {r["t"]: int(r["n"]) for r in await db.fetch(counts)}
