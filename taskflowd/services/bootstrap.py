"""First start: a JWT secret kept in the database, and an admin when there are no users."""

from __future__ import annotations

import logging
import sys

from taskflowd.auth.passwords import PasswordHasher
from taskflowd.auth.service import ensure_admin
from taskflowd.auth.tokens import ensure_jwt_secret
from taskflowd.config import Settings
from taskflowd.store.base import Store

log = logging.getLogger("taskflowd.bootstrap")


async def bootstrap(store: Store, settings: Settings) -> str:
    """Create what a first start needs; returns the JWT secret."""
    jwt_secret = await ensure_jwt_secret(store, settings.auth.jwt_secret)
    hasher = PasswordHasher(settings.auth.bcrypt_rounds, settings.auth.bcrypt_threads)
    try:
        created = await ensure_admin(store, hasher, settings.admin_email, settings.admin_password)
    finally:
        hasher.close()
    if created is None:
        return jwt_secret
    admin, generated = created
    log.info("created the first admin user %s", admin.email)
    if generated:
        # Printed once, outside the log stream, so it never lands in structured logs.
        print(
            f"taskflowd: created admin {admin.email} with password: {generated}\n"
            "taskflowd: change it after logging in; it is not shown again.",
            file=sys.stderr,
            flush=True,
        )
    return jwt_secret
