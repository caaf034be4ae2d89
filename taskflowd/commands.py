"""What each CLI command does, given validated Settings."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from taskflowd.config import Settings, known_keys
from taskflowd.domain.entities import User, utcnow
from taskflowd.domain.enums import Role
from taskflowd.store import SqlStore, open_store
from taskflowd.store.errors import DuplicateKey, StoreError

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
CLI_USER_FIELDS = ("email", "first_name", "last_name", "role", "is_active", "password_hash")
"""User fields whose changes by `taskflowd user …` the audit trail records."""


class CommandError(Exception):
    """A command failed for a reason the user can act on; printed as one line."""


def _with_store(settings: Settings, work: Callable[[SqlStore], Awaitable[int]]) -> int:
    async def main() -> int:
        from taskflowd.lifecycle.keys import keyring_of

        store = open_store(settings.database, keyring_of(settings))
        try:
            await store.start()
        except StoreError as exc:
            raise CommandError(f"cannot open the database: {exc}") from exc
        try:
            return await work(store)
        finally:
            await store.stop()

    return asyncio.run(main())


def serve(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.daemon import run_daemon

    return run_daemon(settings)


def migrate(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.store.migrate import current_version

    async def work(store: SqlStore) -> int:
        print(f"schema at version {await current_version(store.db)}")
        if getattr(args, "vacuum", False) and store.db.dialect == "sqlite":
            await _incremental_vacuum(store)
        return 0

    return _with_store(settings, work)


async def _incremental_vacuum(store: SqlStore) -> None:
    """Switch a SQLite file made before incremental vacuum to it (one full VACUUM)."""
    row = await store.db.fetchrow("PRAGMA auto_vacuum")
    if row is not None and int(row["auto_vacuum"]) == 2:
        print("the file already gives pruned pages back")
        return
    await store.db.execute("PRAGMA auto_vacuum=INCREMENTAL")
    await store.db.execute("VACUUM")
    print("converted to incremental vacuum: pruned pages now go back to the file system")


def rotate_keys(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.lifecycle.keys import KeysMissing, check_keys, rotate

    async def work(store: SqlStore) -> int:
        try:
            await check_keys(store.db)
            report = await rotate(
                store.db, progress=lambda table, n: print(f"{table}: {n} values re-encrypted")
            )
        except KeysMissing as exc:
            raise CommandError(str(exc)) from None
        journal = store.journal
        sealing = store.db.codec.keyring.sealing_id if store.db.codec.keyring else None
        changes = {"keyId": [None, sealing], "valuesResealed": [None, report.resealed]}
        await journal.write(journal.event("security.keys_rotated", None, None, None, changes))
        print(f"re-encrypted {report.resealed} values under the first key")
        return 0

    return _with_store(settings, work)


def check_config(settings: Settings, args: argparse.Namespace) -> int:
    flat: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                flat[f"{prefix}{f.name}"] = value

    walk(settings, "")
    # Keys *named* as secrets (auth.jwt_secret, admin_password, metrics.token,
    # security.encryption_keys), not every key mentioning one: auth.access_token_ttl_s is a
    # plain number worth showing.
    secret = re.compile(r"(secret|password|token|encryption_keys)$", re.IGNORECASE)
    for key in known_keys():
        value = flat[key]
        if value and secret.search(key):
            shown = "(set)"
        elif isinstance(value, str):
            shown = repr(_hide_url_password(value))
        else:
            shown = repr(value)
        print(f"{key} = {shown}")
    print("configuration OK")
    return 0


def _hide_url_password(value: str) -> str:
    """`value` with the password of a URL (postgresql://user:pw@host/db) masked."""
    try:
        parts = urlsplit(value)
        if not parts.password:
            return value
    except ValueError:  # not a URL at all
        return value
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:(set)@{host}"))


async def _hash(settings: Settings, password: str) -> str:
    from taskflowd.auth.passwords import PasswordHasher, password_problems

    problems = password_problems(password)
    if problems:
        raise CommandError(f"password {problems[0].message}")
    hasher = PasswordHasher(settings.auth.bcrypt_rounds, 1)
    try:
        return await hasher.hash(password)
    finally:
        hasher.close()


def _password(args: argparse.Namespace) -> str:
    """The new password: one line of standard input with --password-stdin or when it is
    not a terminal, else typed twice at a prompt."""
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise SystemExit("taskflowd: passwords differ")
    return first


def user(settings: Settings, args: argparse.Namespace) -> int:
    action = args.user_command
    if action == "list":
        return _with_store(settings, _list_users)
    email = args.email.strip().lower()
    if not EMAIL.match(email):
        raise CommandError(f"{args.email!r} is not an email address")
    if action == "create":
        password = _password(args)

        async def create(store: SqlStore) -> int:
            now = utcnow()
            new = User(
                id=str(uuid.uuid4()),
                email=email,
                password_hash=await _hash(settings, password),
                first_name=args.first_name,
                last_name=args.last_name,
                role=Role.ADMIN if args.admin else Role.USER,
                is_active=True,
                token_version=0,
                created_at=now,
                updated_at=now,
            )
            journal = store.journal
            changes = journal.diff(None, new, CLI_USER_FIELDS)
            event = journal.event("user.created", None, None, ("user", new.id), changes)
            try:
                with journal.recording(event):
                    await store.create_user(new)
            except DuplicateKey:
                raise CommandError(f"a user with email {email} exists already") from None
            print(f"created {new.role.value} {email} ({new.id})")
            return 0

        return _with_store(settings, create)
    password = _password(args) if action == "set-password" else ""

    async def change(store: SqlStore) -> int:
        found = await store.get_user_by_email(email)
        if found is None:
            raise CommandError(f"no user with email {email}")
        if action == "set-password":
            changed = dataclasses.replace(found, password_hash=await _hash(settings, password))
        else:
            changed = dataclasses.replace(found, is_active=False)
        changed = dataclasses.replace(
            changed, token_version=found.token_version + 1, updated_at=utcnow()
        )
        await store.revoke_user_tokens(found.id, utcnow())
        journal = store.journal
        verb = "user.password_changed" if action == "set-password" else "user.deactivated"
        changes = journal.diff(found, changed, CLI_USER_FIELDS)
        with journal.recording(journal.event(verb, None, None, ("user", found.id), changes)):
            await store.update_user(changed)
        print(f"{action}: {email} done")
        return 0

    return _with_store(settings, change)


async def _list_users(store: SqlStore) -> int:
    cursor = None
    print(f"{'EMAIL':40} {'ROLE':6} {'ACTIVE':6} ID")
    while True:
        page = await store.list_users(500, cursor)
        for u in page.items:
            print(f"{u.email:40} {u.role.value:6} {'yes' if u.is_active else 'no':6} {u.id}")
        if page.next_cursor is None:
            return 0
        cursor = page.next_cursor


def audit(settings: Settings, args: argparse.Namespace) -> int:
    """`taskflowd audit verify`: 0 when every kept event holds its link, else 1 after
    naming the first broken one."""
    from taskflowd.audit.records import AuditRecords

    async def verify(store: SqlStore) -> int:
        verdict = await AuditRecords(store.db).verify()
        if verdict.broken is None:
            print(
                f"audit chain ok: {verdict.checked} events from position {verdict.first_position}"
            )
            return 0
        broken = verdict.broken
        event = broken.event_id or "(none)"
        print(
            f"audit chain broken at position {broken.position}, event {event}: {broken.reason} "
            f"({verdict.checked} events before it verified)",
            file=sys.stderr,
        )
        return 1

    return _with_store(settings, verify)


def backup(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.backup import backup_sqlite

    try:
        pages = asyncio.run(backup_sqlite(settings.database, args.file))
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(f"backed up {pages} pages to {args.file}", file=sys.stderr)
    return 0


def bench(settings: Settings, args: argparse.Namespace) -> int:
    from taskflowd.bench import run_bench

    return run_bench(settings, args)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "serve": serve,
    "migrate": migrate,
    "check-config": check_config,
    "user": user,
    "backup": backup,
    "audit": audit,
    "rotate-keys": rotate_keys,
    "bench": bench,
}
