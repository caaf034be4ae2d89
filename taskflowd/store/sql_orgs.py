"""Organizations in SQL: orgs, their members, and what their quotas count."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from taskflowd.domain.entities import User
from taskflowd.domain.enums import ExecutionStatus
from taskflowd.domain.orgs import (
    Member,
    Membership,
    Org,
    OrgRole,
    Quotas,
    personal_org_name,
    slugify,
)
from taskflowd.store.base import Page
from taskflowd.store.db import Conn, Row
from taskflowd.store.rows import TimeDecoder
from taskflowd.store.sql_common import SqlRecords, Where

ORG_COLUMNS = (
    "id, slug, name, max_tasks, max_workflows, max_running_jobs, api_limit_per_min, "
    "created_at, updated_at, deleted_at"
)
_MEMBERS = (
    "(SELECT m.org_id, m.user_id AS id, m.role, m.created_at, u.email, u.first_name, "
    "u.last_name FROM org_members m JOIN users u ON u.id = m.user_id "
    "WHERE u.deleted_at IS NULL) AS members"
)
_OWNER = OrgRole.OWNER.value
_QUEUED = (ExecutionStatus.PENDING.value, ExecutionStatus.RETRYING.value)


def org_from_row(row: Row, t: TimeDecoder) -> Org:
    return Org(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        quotas=Quotas(
            row["max_tasks"],
            row["max_workflows"],
            row["max_running_jobs"],
            row["api_limit_per_min"],
        ),
        created_at=t(row["created_at"]),
        updated_at=t(row["updated_at"]),
        deleted_at=None if row["deleted_at"] is None else t(row["deleted_at"]),
    )


def member_from_row(row: Row, t: TimeDecoder) -> Member:
    return Member(
        user_id=row["id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        role=OrgRole(row["role"]),
        created_at=t(row["created_at"]),
    )


class OrgRecords(SqlRecords):
    """Orgs and memberships (see `taskflowd.store.base.Store`)."""

    async def _free_slug(self, conn: Conn, name: str) -> str:
        base = slugify(name)
        taken = await conn.fetchrow("SELECT 1 AS x FROM orgs WHERE slug = $1", base)
        return base if taken is None else f"{base}-{uuid.uuid4().hex[:6]}"

    async def _insert_org(
        self, conn: Conn, org_id: str, name: str, owner_id: str, at: datetime
    ) -> str:
        slug = await self._free_slug(conn, name)
        await conn.execute(
            "INSERT INTO orgs (id, slug, name, created_at, updated_at) VALUES ($1,$2,$3,$4,$4)",
            org_id,
            slug,
            name,
            at,
        )
        await conn.execute(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1,$2,$3,$4)",
            org_id,
            owner_id,
            _OWNER,
            at,
        )
        return slug

    async def _insert_personal_org(self, conn: Conn, user: User) -> str:
        """The user's personal org (the user its OWNER); returns the org's id."""
        org_id = str(uuid.uuid4())
        await self._insert_org(conn, org_id, personal_org_name(user), user.id, user.created_at)
        await conn.execute("UPDATE users SET default_org_id = $2 WHERE id = $1", user.id, org_id)
        return org_id

    async def create_org(
        self, name: str, owner_id: str, at: datetime, org_id: str | None = None
    ) -> Org:
        org_id = org_id or str(uuid.uuid4())
        async with self.db.transaction() as conn:
            slug = await self._insert_org(conn, org_id, name, owner_id, at)
        return Org(org_id, slug, name, Quotas(), at, at)

    async def get_org(self, org_id: str) -> Org | None:
        row = await self.db.fetchrow(
            f"SELECT {ORG_COLUMNS} FROM orgs WHERE (id = $1 OR slug = $1) "
            "AND deleted_at IS NULL ORDER BY slug = $1 LIMIT 1",
            org_id,
        )
        return org_from_row(row, self._t) if row else None

    async def list_orgs(
        self, member_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[Org]:
        """Live orgs, newest first: those `member_id` belongs to, or all (None)."""
        where = Where()
        where.clauses.append("deleted_at IS NULL")
        if member_id is not None:
            where.add("id IN (SELECT org_id FROM org_members WHERE user_id = {})", member_id)
        where.after(cursor)
        return await self._page("orgs", ORG_COLUMNS, where, limit, org_from_row)

    async def update_org(self, org: Org) -> Org | None:
        q = org.quotas
        changed = await self.db.execute(
            "UPDATE orgs SET name = $2, max_tasks = $3, max_workflows = $4, "
            "max_running_jobs = $5, api_limit_per_min = $6, updated_at = $7 "
            "WHERE id = $1 AND deleted_at IS NULL",
            org.id,
            org.name,
            q.max_tasks,
            q.max_workflows,
            q.max_running_jobs,
            q.api_limit_per_min,
            org.updated_at,
        )
        return org if changed else None

    async def delete_org(self, org_id: str, at: datetime) -> list[str]:
        """Soft-delete the org with its tasks, cancel its queued jobs, and drop its
        memberships; returns the ids of the users who were members."""
        async with self.db.transaction() as conn:
            changed = await conn.execute(
                "UPDATE orgs SET deleted_at = $2, updated_at = $2 "
                "WHERE id = $1 AND deleted_at IS NULL",
                org_id,
                at,
            )
            if not changed:
                return []
            members = await conn.fetch("SELECT user_id FROM org_members WHERE org_id = $1", org_id)
            await conn.execute(
                "UPDATE tasks SET deleted_at = $2, updated_at = $2, next_run_at = NULL "
                "WHERE org_id = $1 AND deleted_at IS NULL",
                org_id,
                at,
            )
            await conn.execute(
                "UPDATE job_executions SET status = $2, updated_at = $3, completed_at = $3 "
                "WHERE org_id = $1 AND status IN ($4, $5) AND completed_at IS NULL",
                org_id,
                ExecutionStatus.CANCELLED.value,
                at,
                *_QUEUED,
            )
            await conn.execute("DELETE FROM org_members WHERE org_id = $1", org_id)
            await conn.execute(
                "UPDATE users SET default_org_id = NULL WHERE default_org_id = $1", org_id
            )
        return [str(r["user_id"]) for r in members]

    # --- members -----------------------------------------------------------------
    async def memberships(self, user_id: str) -> list[Membership]:
        """The user's places in live orgs, oldest first."""
        found = await self.db.fetch(
            "SELECT m.org_id, o.slug, m.role FROM org_members m JOIN orgs o ON o.id = m.org_id "
            "WHERE m.user_id = $1 AND o.deleted_at IS NULL ORDER BY m.created_at, m.org_id",
            user_id,
        )
        return [Membership(r["org_id"], r["slug"], OrgRole(r["role"])) for r in found]

    async def get_member(self, org_id: str, user_id: str) -> Member | None:
        row = await self.db.fetchrow(
            f"SELECT * FROM {_MEMBERS} WHERE org_id = $1 AND id = $2", org_id, user_id
        )
        return member_from_row(row, self._t) if row else None

    async def list_members(
        self, org_id: str, limit: int, cursor: str | None = None
    ) -> Page[Member]:
        where = Where()
        where.add("org_id = {}", org_id)
        where.after(cursor)
        return await self._page(_MEMBERS, "*", where, limit, member_from_row)

    async def add_member(self, org_id: str, user_id: str, role: OrgRole, at: datetime) -> bool:
        """False when the user is a member already."""
        changed = await self.db.execute(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1,$2,$3,$4) "
            "ON CONFLICT (org_id, user_id) DO NOTHING",
            org_id,
            user_id,
            role.value,
            at,
        )
        return changed > 0

    async def _lock_org(self, conn: Conn, org_id: str) -> None:
        # Serialises changes of one org's owners, so two demotions cannot both pass.
        if self.db.dialect == "postgresql":
            await conn.execute("SELECT id FROM orgs WHERE id = $1 FOR UPDATE", org_id)

    _KEEPS_AN_OWNER = (
        "(role <> 'OWNER' OR (SELECT COUNT(*) FROM org_members o "
        "WHERE o.org_id = $1 AND o.role = 'OWNER') > 1)"
    )

    async def set_member_role(self, org_id: str, user_id: str, role: OrgRole) -> bool | None:
        """Change a member's role; None when not a member, False when that would leave
        the org without an OWNER."""
        return await self._change_member(
            "UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2 AND "
            f"($3 = 'OWNER' OR {self._KEEPS_AN_OWNER})",
            org_id,
            user_id,
            role.value,
        )

    async def remove_member(self, org_id: str, user_id: str) -> bool | None:
        """Remove a member; None when not a member, False for the last OWNER."""
        return await self._change_member(
            "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2 AND "
            + self._KEEPS_AN_OWNER,
            org_id,
            user_id,
        )

    async def _change_member(self, sql: str, org_id: str, user_id: str, *args: Any) -> bool | None:
        async with self.db.transaction() as conn:
            await self._lock_org(conn, org_id)
            if await conn.execute(sql, org_id, user_id, *args):
                await conn.execute(
                    "UPDATE users SET default_org_id = NULL WHERE id = $1 AND "
                    "default_org_id = $2 AND NOT EXISTS (SELECT 1 FROM org_members "
                    "WHERE org_id = $2 AND user_id = $1)",
                    user_id,
                    org_id,
                )
                return True
            found = await conn.fetchrow(
                "SELECT 1 AS x FROM org_members WHERE org_id = $1 AND user_id = $2",
                org_id,
                user_id,
            )
        return None if found is None else False

    # --- usage -------------------------------------------------------------------
    async def count_tasks(self, org_id: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM tasks "
            "WHERE org_id = $1 AND deleted_at IS NULL AND workflow_id IS NULL",
            org_id,
        )
        return int(row["n"]) if row else 0

    async def count_workflows(self, org_id: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM workflows WHERE org_id = $1 AND deleted_at IS NULL",
            org_id,
        )
        return int(row["n"]) if row else 0

    async def count_running(self, org_id: str) -> int:
        row = await self.db.fetchrow(
            "SELECT COUNT(*) AS n FROM job_executions WHERE org_id = $1 AND status = $2 "
            "AND completed_at IS NULL",
            org_id,
            ExecutionStatus.PROCESSING.value,
        )
        return int(row["n"]) if row else 0
