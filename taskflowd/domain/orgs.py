"""Organizations (DESIGN §11): roles, quotas and who acts where; rules without I/O.

A request acts as an `Actor`: a user in one org with that org's role. Its `scope` is the
org every read and change of org data is restricted to, or None for a site ADMIN who
named no org (the site admin's view across orgs).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from datetime import datetime

from taskflowd.domain.entities import DEFAULT_ORG_ID as DEFAULT_ORG_ID
from taskflowd.domain.entities import User
from taskflowd.domain.enums import OrgRole as OrgRole
from taskflowd.domain.enums import Role
from taskflowd.domain.errors import FieldError, Forbidden

MAX_NAME_LENGTH = 200
MAX_QUOTA = 1_000_000_000
MAX_SLUG_LENGTH = 48
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits of one org; 0 means unlimited. An org's own values (None: not set)
    override the configured defaults."""

    max_tasks: int | None = None
    max_workflows: int | None = None
    max_running_jobs: int | None = None
    api_limit_per_min: int | None = None

    def over(self, defaults: Quotas) -> Quotas:
        """These quotas with every unset one taken from `defaults`."""
        return Quotas(
            **{
                f.name: getattr(defaults, f.name)
                if getattr(self, f.name) is None
                else getattr(self, f.name)
                for f in fields(Quotas)
            }
        )


QUOTA_NAMES = tuple(f.name for f in fields(Quotas))


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    slug: str
    name: str
    quotas: Quotas
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """A user's place in one org (with the org's slug, to resolve a header by slug)."""

    org_id: str
    slug: str
    role: OrgRole


@dataclass(frozen=True, slots=True)
class Member:
    """A member as an org's admins see it."""

    user_id: str
    email: str
    first_name: str
    last_name: str
    role: OrgRole
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Actor:
    """A user acting in org `org_id` with `org_role` (None: a site ADMIN who is no member)."""

    user: User
    org_id: str
    org_role: OrgRole | None
    across: bool = False
    """A site ADMIN who named no org: reads and changes reach every org."""

    @property
    def id(self) -> str:
        return self.user.id

    @property
    def role(self) -> Role:
        return self.user.role

    @property
    def is_site_admin(self) -> bool:
        return self.user.role is Role.ADMIN

    @property
    def scope(self) -> str | None:
        """The org that reads and changes are restricted to; None: all orgs."""
        return None if self.across else self.org_id

    def require(self, needed: OrgRole, action: str) -> None:
        """Raise Forbidden unless the actor's org role is `needed` or higher (a site
        ADMIN may do anything)."""
        if self.is_site_admin:
            return
        if self.org_role is None or not self.org_role.at_least(needed):
            raise Forbidden(f"{action} needs the {needed.value} role (or higher) in the org")


def as_actor(who: User | Actor) -> Actor:
    """`who` as an Actor: a bare User acts as the owner of its default org (trusted
    internal callers); a site ADMIN then reads across orgs."""
    if isinstance(who, Actor):
        return who
    return Actor(
        who,
        who.default_org_id or DEFAULT_ORG_ID,
        OrgRole.OWNER,
        across=who.role is Role.ADMIN,
    )


def slugify(text: str) -> str:
    """A URL-safe slug: "Carl's Team" → `carl-s-team`; never empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_SLUG_LENGTH]
    slug = slug.strip("-") or "org"
    # A slug never reads as an org id, so `X-Taskflow-Org` means one org only.
    return f"org-{slug}" if _UUID.fullmatch(slug) else slug


def personal_org_name(user: User) -> str:
    """The name of the org registration creates for `user`."""
    first = user.first_name.strip() or user.email.partition("@")[0]
    return f"{first}'s Team"[:MAX_NAME_LENGTH]


def name_problems(field: str, name: str) -> list[FieldError]:
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        return [FieldError(field, f"must be 1 to {MAX_NAME_LENGTH} printable characters")]
    return []


def quota_problems(quotas: Quotas, field_names: dict[str, str]) -> list[FieldError]:
    """Each set quota must lie in 0..MAX_QUOTA; `field_names` maps to the API's names."""
    return [
        FieldError(field_names[name], f"must be between 0 and {MAX_QUOTA}")
        for name in QUOTA_NAMES
        if (value := getattr(quotas, name)) is not None and not 0 <= value <= MAX_QUOTA
    ]


class QuotaExceeded(Forbidden):
    """An org reached one of its quotas; `quota` names it (e.g. `max_tasks`)."""

    code = "quota_exceeded"

    def __init__(self, quota: str, limit: int) -> None:
        super().__init__(f"the organization's quota {quota} ({limit}) is reached")
        self.quota = quota
        self.limit = limit
