"""Accounts in SQL: users, their refresh tokens and their API keys."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from taskflowd.domain.entities import ApiKey, RefreshToken, User
from taskflowd.store import rows
from taskflowd.store.base import Page
from taskflowd.store.sql_common import Where
from taskflowd.store.sql_orgs import OrgRecords

_USER_INSERT_COLUMNS = (
    "id, email, password_hash, first_name, last_name, role, is_active, token_version, "
    "created_at, updated_at, deleted_at"
)
USER_COLUMNS = _USER_INSERT_COLUMNS + ", default_org_id"
_API_KEY_COLUMNS = (
    "id, user_id, name, prefix, key_hash, created_at, expires_at, last_used_at, revoked_at, org_id"
)


class AccountRecords(OrgRecords):
    """Users, refresh tokens and API keys (see `taskflowd.store.base.Store`)."""

    # --- users -----------------------------------------------------------------
    async def create_user(self, user: User) -> User:
        """Emails are kept in lower case, so uniqueness and look-up ignore case. The
        user's personal org is created with it, in the same transaction."""
        async with self.db.transaction() as conn:
            await conn.execute(
                f"INSERT INTO users ({_USER_INSERT_COLUMNS}) "
                "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
                user.id,
                user.email.lower(),
                user.password_hash,
                user.first_name,
                user.last_name,
                user.role.value,
                user.is_active,
                user.token_version,
                user.created_at,
                user.updated_at,
                user.deleted_at,
            )
            org_id = await self._insert_personal_org(conn, user)
        return dataclasses.replace(user, email=user.email.lower(), default_org_id=org_id)

    async def _one_user(self, where: str, value: str) -> User | None:
        row = await self.db.fetchrow(
            f"SELECT {USER_COLUMNS} FROM users WHERE {where} = $1 AND deleted_at IS NULL", value
        )
        return rows.user_from_row(row, self._t) if row else None

    async def get_user(self, user_id: str) -> User | None:
        return await self._one_user("id", user_id)

    async def get_user_by_email(self, email: str) -> User | None:
        return await self._one_user("email", email.lower())

    async def update_user(self, user: User) -> User | None:
        changed = await self.db.execute(
            "UPDATE users SET email = $2, password_hash = $3, first_name = $4, last_name = $5, "
            "role = $6, is_active = $7, token_version = $8, updated_at = $9 "
            "WHERE id = $1 AND deleted_at IS NULL",
            user.id,
            user.email.lower(),
            user.password_hash,
            user.first_name,
            user.last_name,
            user.role.value,
            user.is_active,
            user.token_version,
            user.updated_at,
        )
        return user if changed else None

    async def delete_user(self, user_id: str, at: datetime) -> bool:
        changed = await self.db.execute(
            "UPDATE users SET deleted_at = $2, updated_at = $2, is_active = $3, "
            "token_version = token_version + 1 WHERE id = $1 AND deleted_at IS NULL",
            user_id,
            at,
            False,
        )
        return changed > 0

    async def list_users(self, limit: int, cursor: str | None = None) -> Page[User]:
        where = Where()
        where.clauses.append("deleted_at IS NULL")
        where.after(cursor)
        return await self._page("users", USER_COLUMNS, where, limit, rows.user_from_row)

    async def count_users(self) -> int:
        row = await self.db.fetchrow("SELECT COUNT(*) AS n FROM users WHERE deleted_at IS NULL")
        return int(row["n"]) if row else 0

    # --- refresh tokens --------------------------------------------------------
    async def add_refresh_token(self, token: RefreshToken) -> None:
        await self.db.execute(
            "INSERT INTO refresh_tokens (id, user_id, token_hash, family_id, expires_at, "
            "created_at, used_at, revoked_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            token.id,
            token.user_id,
            token.token_hash,
            token.family_id,
            token.expires_at,
            token.created_at,
            token.used_at,
            token.revoked_at,
        )

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        # A token counts as revoked once any token of its family is: a revocation that
        # raced with a rotation (and missed the successor it could not see yet) still
        # ends the successor.
        row = await self.db.fetchrow(
            "SELECT t.id, t.user_id, t.token_hash, t.family_id, t.expires_at, t.created_at, "
            "t.used_at, COALESCE(t.revoked_at, (SELECT MIN(f.revoked_at) FROM refresh_tokens f "
            "WHERE f.family_id = t.family_id)) AS revoked_at "
            "FROM refresh_tokens t WHERE t.token_hash = $1",
            token_hash,
        )
        return rows.refresh_token_from_row(row, self._t) if row else None

    async def spend_refresh_token(self, token_id: str, at: datetime) -> bool:
        changed = await self.db.execute(
            "UPDATE refresh_tokens SET used_at = $2 "
            "WHERE id = $1 AND used_at IS NULL AND revoked_at IS NULL AND NOT EXISTS ("
            "SELECT 1 FROM refresh_tokens f WHERE f.family_id = refresh_tokens.family_id "
            "AND f.revoked_at IS NOT NULL)",
            token_id,
            at,
        )
        return changed > 0

    async def revoke_token_family(self, family_id: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL",
            family_id,
            at,
        )

    async def revoke_user_tokens(self, user_id: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            user_id,
            at,
        )

    # --- API keys ----------------------------------------------------------------
    async def create_api_key(self, key: ApiKey) -> ApiKey:
        await self.db.execute(
            f"INSERT INTO api_keys ({_API_KEY_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)",
            key.id,
            key.user_id,
            key.name,
            key.prefix,
            key.key_hash,
            key.created_at,
            key.expires_at,
            key.last_used_at,
            key.revoked_at,
            key.org_id,
        )
        return key

    async def get_api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = await self.db.fetchrow(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1", key_hash
        )
        return rows.api_key_from_row(row, self._t) if row else None

    async def list_api_keys(
        self, user_id: str, org_id: str | None, limit: int, cursor: str | None = None
    ) -> Page[ApiKey]:
        where = Where()
        where.add("user_id = {}", user_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        where.clauses.append("revoked_at IS NULL")
        where.after(cursor)
        return await self._page("api_keys", _API_KEY_COLUMNS, where, limit, rows.api_key_from_row)

    async def revoke_api_key(
        self, key_id: str, user_id: str | None, org_id: str | None, at: datetime
    ) -> ApiKey | None:
        where = Where()
        where.add("id = {}", key_id)
        where.clauses.append("revoked_at IS NULL")
        if user_id is not None:
            where.add("user_id = {}", user_id)
        if org_id is not None:
            where.add("org_id = {}", org_id)
        changed = await self.db.execute(
            f"UPDATE api_keys SET revoked_at = ${len(where.args) + 1}{where.sql()}",
            *where.args,
            at,
        )
        if not changed:
            return None
        row = await self.db.fetchrow(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id
        )
        return rows.api_key_from_row(row, self._t) if row else None

    async def touch_api_key(self, key_id: str, at: datetime) -> None:
        await self.db.execute(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND "
            "(last_used_at IS NULL OR last_used_at < $2)",
            key_id,
            at,
        )
