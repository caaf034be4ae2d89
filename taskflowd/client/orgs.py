"""/api/v1/orgs for the client: organizations and their members."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from taskflowd.client.codec import decode
from taskflowd.client.models import Member, Org, Page
from taskflowd.client.resources import DEFAULT_PAGE, ITER_PAGE, _Resource, every_item, page_of
from taskflowd.domain.enums import OrgRole

PREFIX = "/api/v1/orgs"


class Orgs(_Resource):
    """Organizations: yours to list and create; members by role (DESIGN §11)."""

    async def list(self, *, limit: int = DEFAULT_PAGE, cursor: str | None = None) -> Page[Org]:
        data = await self._http.call("GET", PREFIX, params={"limit": limit, "cursor": cursor})
        return page_of(Org, data)

    def iter(self, *, page_size: int = ITER_PAGE) -> AsyncIterator[Org]:
        return every_item(lambda cursor: self.list(limit=page_size, cursor=cursor))

    async def create(self, name: str) -> Org:
        data = await self._http.call("POST", PREFIX, body={"name": name}, ok=(201,))
        return decode(Org, data)

    async def get(self, org: str) -> Org:
        """The org with id or slug `org`."""
        return decode(Org, await self._http.call("GET", f"{PREFIX}/{org}"))

    async def update(
        self, org: str, *, name: str | None = None, quotas: dict[str, int | None] | None = None
    ) -> Org:
        """Rename the org and/or (site admins) set quota overrides, by their API names
        (`{"maxTasks": 10}`; None restores a default)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if quotas is not None:
            body["quotas"] = quotas
        return decode(Org, await self._http.call("PATCH", f"{PREFIX}/{org}", body=body))

    async def delete(self, org: str) -> None:
        await self._http.call("DELETE", f"{PREFIX}/{org}", ok=(204,))

    async def members(
        self, org: str, *, limit: int = DEFAULT_PAGE, cursor: str | None = None
    ) -> Page[Member]:
        data = await self._http.call(
            "GET", f"{PREFIX}/{org}/members", params={"limit": limit, "cursor": cursor}
        )
        return page_of(Member, data)

    async def invite(self, org: str, email: str, role: OrgRole = OrgRole.MEMBER) -> Member:
        """Add the existing user with this email address."""
        body = {"email": email, "role": role.value}
        data = await self._http.call("POST", f"{PREFIX}/{org}/members", body=body, ok=(201,))
        return decode(Member, data)

    async def set_role(self, org: str, user_id: str, role: OrgRole) -> Member:
        data = await self._http.call(
            "PATCH", f"{PREFIX}/{org}/members/{user_id}", body={"role": role.value}
        )
        return decode(Member, data)

    async def remove(self, org: str, user_id: str) -> None:
        await self._http.call("DELETE", f"{PREFIX}/{org}/members/{user_id}", ok=(204,))
