"""Upgrading a database written at migration 0004 (the release before organizations):
every row moves into the default org, every live user becomes its member (site admins as
OWNER), and nothing is lost, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from taskflowd.domain.entities import DEFAULT_ORG_ID, utcnow
from taskflowd.domain.enums import OrgRole
from taskflowd.store import open_store
from taskflowd.store.db import Database
from taskflowd.store.migrate import available, current_version, migrate

BEFORE_ORGS = 4
COUNTED = (
    "users",
    "tasks",
    "job_executions",
    "retry_history",
    "dead_letter_jobs",
    "refresh_tokens",
    "api_keys",
    "idempotency_keys",
)


async def write_release_rows(db: Database) -> None:
    """Rows as the 0004 release wrote them: an admin, a user, one deleted user, their
    tasks, executions, retries, dead letters, tokens, API keys and idempotency keys."""
    now = utcnow()
    users = [("u-admin", "ADMIN", None), ("u-user", "USER", None), ("u-gone", "USER", now)]
    for user_id, role, deleted_at in users:
        await db.execute(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, role, "
            "is_active, token_version, created_at, updated_at, deleted_at) "
            "VALUES ($1, $2, 'x', 'A', 'B', $3, $4, 0, $5, $5, $6)",
            user_id,
            f"{user_id}@example.com",
            role,
            True,
            now,
            deleted_at,
        )
    for i, owner in enumerate(("u-admin", "u-user", "u-user")):
        task_id, run_id = f"t-{i}", f"e-{i}"
        await db.execute(
            "INSERT INTO tasks (id, name, type, status, handler, payload, created_by, "
            "created_at, updated_at) VALUES ($1, 'n', 'ONE_TIME', 'ACTIVE', 'echo', '{}', "
            "$2, $3, $3)",
            task_id,
            owner,
            now + timedelta(seconds=i),
        )
        await db.execute(
            "INSERT INTO job_executions (id, task_id, job_id, owner_id, status, scheduled_for, "
            "run_at, handler, payload, created_at, updated_at, idempotency_key) "
            "VALUES ($1, $2, $3, $4, 'FAILED', $5, $5, 'echo', '{}', $5, $5, $6)",
            run_id,
            task_id,
            f"{task_id}@once",
            owner,
            now,
            f"key-{i}",
        )
        await db.execute(
            "INSERT INTO retry_history (execution_id, attempt, error, failed_at) "
            "VALUES ($1, 1, '{}', $2)",
            run_id,
            now,
        )
        await db.execute(
            "INSERT INTO dead_letter_jobs (id, execution_id, task_id, job_id, owner_id, "
            "payload, error, attempts, created_at) VALUES ($1, $2, $3, $4, $5, '{}', '{}', 1, $6)",
            f"d-{i}",
            run_id,
            task_id,
            f"{task_id}@once",
            owner,
            now,
        )
        await db.execute(
            "INSERT INTO refresh_tokens (id, user_id, token_hash, family_id, expires_at, "
            "created_at) VALUES ($1, $2, $3, 'f', $4, $4)",
            f"r-{i}",
            owner,
            f"hash-r-{i}",
            now,
        )
        await db.execute(
            "INSERT INTO api_keys (id, user_id, name, prefix, key_hash, created_at) "
            "VALUES ($1, $2, 'k', 'tfk_x', $3, $4)",
            f"k-{i}",
            owner,
            f"hash-k-{i}",
            now,
        )
        await db.execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, created_at) "
            "VALUES ($1, $2, 'fp', 201, '{}', $3)",
            owner,
            f"idem-{i}",
            now,
        )


async def counts(db: Database) -> dict[str, int]:
    found = {}
    for table in COUNTED:
        row = await db.fetchrow(f"SELECT COUNT(*) AS n FROM {table}")
        assert row is not None
        found[table] = int(row["n"])
    return found


async def test_an_0004_database_moves_into_the_default_org(empty_db: Database) -> None:
    db = empty_db
    await migrate(db, up_to=BEFORE_ORGS)
    await write_release_rows(db)
    before = await counts(db)

    applied = await migrate(db)
    assert [m.version for m in applied] == [
        m.version for m in available(db.dialect) if m.version > BEFORE_ORGS
    ]
    assert await current_version(db) == max(m.version for m in available(db.dialect))
    assert await counts(db) == before, "no row is lost"
    for table in ("tasks", "job_executions", "dead_letter_jobs", "api_keys", "idempotency_keys"):
        rows = await db.fetch(f"SELECT DISTINCT org_id FROM {table}")
        assert [r["org_id"] for r in rows] == [DEFAULT_ORG_ID], table
    members = await db.fetch(
        "SELECT user_id, role FROM org_members WHERE org_id = $1", DEFAULT_ORG_ID
    )
    assert {r["user_id"]: r["role"] for r in members} == {
        "u-admin": OrgRole.OWNER.value,
        "u-user": OrgRole.MEMBER.value,
    }


async def test_the_upgraded_store_serves_the_old_rows(db_url: str, empty_db: Database) -> None:
    await migrate(empty_db, up_to=BEFORE_ORGS)
    await write_release_rows(empty_db)
    store = open_store(db_url)
    await store.start()
    try:
        user = await store.get_user("u-user")
        assert user is not None and user.default_org_id == DEFAULT_ORG_ID
        org = await store.get_org("default")
        assert org is not None and org.id == DEFAULT_ORG_ID
        assert await store.count_tasks(DEFAULT_ORG_ID) == 3
        task = await store.get_task("t-1", DEFAULT_ORG_ID)
        assert task is not None and task.created_by == "u-user"
        assert await store.get_task("t-1", "another-org") is None
        replay = await store.get_idempotent(DEFAULT_ORG_ID, "u-user", "idem-1")
        assert replay is not None and replay.status == 201
        key = await store.get_api_key_by_hash("hash-k-2")
        assert key is not None and key.org_id == DEFAULT_ORG_ID
        roles = {m.role for m in await store.memberships("u-admin")}
        assert roles == {OrgRole.OWNER}
    finally:
        await store.stop()
