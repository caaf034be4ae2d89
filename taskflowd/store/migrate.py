"""Versioned schema migrations: `migrations/<dialect>/NNNN_name.sql`, each applied once.

Every pending file runs in its own transaction together with its `schema_migrations`
row, so a crash leaves the schema at a known version. PostgreSQL serialises concurrent
migrators (several daemons starting at once) with an advisory lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from taskflowd.domain.entities import utcnow
from taskflowd.store.db import Database

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_ADVISORY_LOCK_KEY = 0x7461736B  # "task"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements; a migration file separates them with `;` at line end."""
        lines = [ln for ln in self.sql.splitlines() if not ln.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().strip(";")]


def available(dialect: str) -> list[Migration]:
    folder = "postgres" if dialect == "postgresql" else dialect
    root = resources.files("taskflowd.store") / "migrations" / folder
    found = []
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""


async def _create_table(db: Database) -> None:
    """Create the table of applied versions unless it exists. On PostgreSQL under the
    migrations' lock: two nodes creating it at once on a fresh database both pass IF NOT
    EXISTS, and one fails on the catalog's unique index (the node then cannot start)."""
    if db.dialect != "postgresql":
        await db.execute(_CREATE_TABLE)
        return
    found = await db.fetchrow("SELECT to_regclass('schema_migrations') IS NOT NULL AS made")
    if found is not None and found["made"]:
        return
    async with db.transaction() as conn:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
        await conn.execute(_CREATE_TABLE)


async def migrate(db: Database, up_to: int | None = None) -> list[Migration]:
    """Apply every pending migration in order, or those up to version `up_to` (the schema
    of an older release); returns those applied (none: already current)."""
    await _create_table(db)
    # A node restarting on a current schema reads the versions once and opens no
    # transaction; a pending migration is checked again under the transaction's lock.
    recorded = {row["version"] for row in await db.fetch("SELECT version FROM schema_migrations")}
    applied: list[Migration] = []
    for migration in available(db.dialect):
        if up_to is not None and migration.version > up_to:
            break
        if migration.version in recorded:
            continue
        async with db.transaction() as conn:
            if db.dialect == "postgresql":
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
            row = await conn.fetchrow(
                "SELECT 1 FROM schema_migrations WHERE version = $1", migration.version
            )
            if row is not None:
                continue
            for statement in migration.statements():
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                utcnow().isoformat(),
            )
            applied.append(migration)
    return applied


async def current_version(db: Database) -> int:
    await _create_table(db)
    row = await db.fetchrow("SELECT MAX(version) AS v FROM schema_migrations")
    return int(row["v"]) if row and row["v"] is not None else 0
