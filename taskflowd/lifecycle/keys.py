"""The encryption keyring as configured, checked against what the database holds, and
the re-encryption of stored values under the first key (`taskflowd rotate-keys`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from taskflowd.config import ConfigError, Settings
from taskflowd.domain.entities import utcnow
from taskflowd.store.codec import SEALED_PREFIX, BadKey, Keyring
from taskflowd.store.db import Conn, Database, Row

log = logging.getLogger("taskflowd.lifecycle.keys")

KEY_IDS_SETTING = "encryption.key_ids"
"""The ids of every key that may have sealed a stored value, comma-separated."""

SEALED_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tasks", "id", ("payload",)),
    ("job_executions", "id", ("payload", "result", "error")),
    ("retry_history", "id", ("error",)),
    ("dead_letter_jobs", "id", ("payload", "error")),
)
"""(table, primary key, sealed columns) of every JSON value the codec writes."""
SEALED_TEXT_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("webhook_endpoints", "id", ("secret", "previous_secret")),
    ("webhook_deliveries", "id", ("body",)),
)
"""Likewise for text the codec seals as it is (`seal_text`)."""


class KeysMissing(Exception):
    """Stored values are sealed with keys the configuration no longer holds."""


def keyring_of(settings: Settings) -> Keyring | None:
    """The configured keyring (None without keys); a malformed key is a ConfigError."""
    try:
        return Keyring.from_config(settings.security.encryption_keys)
    except BadKey as exc:
        raise ConfigError("security.encryption_keys", str(exc)) from None


async def _recorded(db: Database) -> set[str]:
    row = await db.fetchrow("SELECT value FROM settings WHERE key = $1", KEY_IDS_SETTING)
    return {k for k in str(row["value"]).split(",") if k} if row else set()


async def _record(db: Database, ids: set[str]) -> None:
    await db.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        KEY_IDS_SETTING,
        ",".join(sorted(ids)),
        utcnow(),
    )


async def check_keys(db: Database) -> None:
    """Refuse to start when the database may hold values sealed with a key that is not
    configured; otherwise note the sealing key among those in use."""
    keyring = db.codec.keyring
    recorded = await _recorded(db)
    missing = sorted(recorded - (keyring.ids if keyring else frozenset()))
    if missing:
        raise KeysMissing(
            f"stored data is encrypted with key id(s) {', '.join(missing)}, which "
            "security.encryption_keys does not hold: add the key(s) back (the first one "
            "encrypts, all decrypt)"
        )
    if keyring is not None and keyring.sealing_id not in recorded:
        await _record(db, recorded | {keyring.sealing_id})


@dataclass
class RotationReport:
    resealed: int = 0
    """Values written again under the first key."""


async def rotate(
    db: Database,
    *,
    batch_size: int = 200,
    pause_s: float = 0.005,
    progress: Callable[[str, int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every stored value that is plain or sealed with another key under the
    first key, online: batches by primary key, each in its own short transaction, each
    row changed only if it still holds what was read (a concurrent writer wins). When
    every value is under the first key, only that key is recorded as in use."""
    codec = db.codec
    keyring = codec.keyring
    if keyring is None:
        raise KeysMissing("security.encryption_keys is empty: there is no key to encrypt with")
    report = RotationReport()
    plans = [(spec, codec.reseal) for spec in SEALED_COLUMNS]
    plans += [(spec, codec.reseal_text) for spec in SEALED_TEXT_COLUMNS]
    for (table, pk, columns), reseal in plans:
        done = await _rotate_table(db, reseal, table, pk, columns, batch_size, pause_s)
        report.resealed += done
        if progress is not None:
            progress(table, done)
    if await _all_sealed_by(db, keyring.sealing_id):
        await _record(db, {keyring.sealing_id})
    return report


async def _rotate_table(
    db: Database,
    reseal: Callable[[str | None], str | None],
    table: str,
    pk: str,
    columns: tuple[str, ...],
    batch_size: int,
    pause_s: float,
) -> int:
    done = 0
    after: object = None
    busy: list[object] = []
    picked = ", ".join(columns)
    while True:
        where, args = (
            ("", [batch_size]) if after is None else (f" WHERE {pk} > $2", [batch_size, after])
        )
        found = await db.fetch(
            f"SELECT {pk} AS k, {picked} FROM {table}{where} ORDER BY {pk} LIMIT $1", *args
        )
        if not found:
            break
        after = found[-1]["k"]
        resealed, skipped = await _reseal_batch(db, reseal, table, pk, columns, found)
        done += resealed
        busy.extend(skipped)
        await asyncio.sleep(pause_s)
    while busy:
        found = await db.fetch(
            f"SELECT {pk} AS k, {picked} FROM {table} WHERE {pk} = ANY($1) ORDER BY {pk}",
            busy[:batch_size],
        )
        del busy[:batch_size]
        resealed, skipped = await _reseal_batch(db, reseal, table, pk, columns, found)
        done += resealed
        busy.extend(skipped)
        await asyncio.sleep(max(pause_s, _BUSY_PAUSE_S) if skipped else pause_s)
    return done


_BUSY_PAUSE_S = 0.05
"""How long rotation waits before it comes back to rows a live transaction held."""


async def _reseal_batch(
    db: Database,
    reseal: Callable[[str | None], str | None],
    table: str,
    pk: str,
    columns: tuple[str, ...],
    found: list[Row],
) -> tuple[int, list[object]]:
    """Write one batch again under the first key. On PostgreSQL the batch first takes the
    row locks it can without waiting (`SKIP LOCKED`), so rotation never waits on a claim
    or a settle while holding locks of its own (no deadlock with the live path); the rows
    it could not lock are returned to be tried again."""

    async def body(conn: Conn) -> tuple[int, list[object]]:
        done = 0
        skipped: list[object] = []
        rows = list(found)
        if db.dialect == "postgresql" and rows:
            locked = {
                r["k"]
                for r in await conn.fetch(
                    f"SELECT {pk} AS k FROM {table} WHERE {pk} = ANY($1) "
                    f"ORDER BY {pk} FOR UPDATE SKIP LOCKED",
                    [r["k"] for r in rows],
                )
            }
            skipped = [r["k"] for r in rows if r["k"] not in locked]
            rows = [r for r in rows if r["k"] in locked]
        for row in rows:
            for column in columns:
                fresh = reseal(row[column])
                if fresh is None:
                    continue
                done += await conn.execute(
                    f"UPDATE {table} SET {column} = $1 WHERE {pk} = $2 AND {column} = $3",
                    fresh,
                    row["k"],
                    row[column],
                )
        return done, skipped

    return await db.atomic(body)


async def _all_sealed_by(db: Database, key: str) -> bool:
    prefix = f"{SEALED_PREFIX}{key}:"
    for table, _, columns in (*SEALED_COLUMNS, *SEALED_TEXT_COLUMNS):
        for column in columns:
            found = await db.fetch(
                f"SELECT 1 FROM {table} WHERE {column} IS NOT NULL "
                f"AND substr({column}, 1, {len(prefix)}) <> $1 LIMIT 1",
                prefix,
            )
            if found:
                return False
    return True
