"""The rules of webhook delivery, free of I/O: event names, secrets, Standard Webhooks
signatures, the retry schedule and what a receiver's answer means."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

EVENT_TYPES = (
    "execution.completed",
    "execution.failed",
    "execution.dead_lettered",
    "execution.retrying",
    "workflow_run.finished",
    "task.created",
    "task.updated",
    "task.deleted",
)
ANY_EVENT = "*"
MAX_URL_LENGTH = 2048
PING = "ping"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
SECRET_BYTES = 24
MESSAGE_PREFIX = "msg_"
RESPONSE_BODY_CHARS = 1024
"""How much of a receiver's answer the delivery log keeps."""
JITTER = 0.1
"""Each retry delay is moved by up to this fraction either way."""
GONE_REASON = "the receiver answered 410 Gone"
FAILING_REASON = "every delivery failed for too long"


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


def new_secret() -> str:
    """A signing secret: `whsec_` and the base64 of random bytes (the HMAC key)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` as Standard Webhooks defines it."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_header(secrets_: Iterable[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated."""
    return " ".join(signature(s, message_id, timestamp, body) for s in secrets_)


def events_column(events: Sequence[str]) -> str:
    """Subscribed types as stored: `,a,b,`, so `LIKE '%,a,%'` matches exactly one name."""
    return "," + ",".join(sorted(set(events))) + ","


def events_from_column(text: str) -> list[str]:
    return [e for e in text.split(",") if e]


def next_delay_s(
    attempts: int, schedule_s: Sequence[float], rng: random.Random | None = None
) -> float:
    """The pause after the `attempts`-th failed attempt: the schedule's entry for it (its
    last entry once past the end), moved by up to ±`JITTER`."""
    base = schedule_s[min(attempts, len(schedule_s)) - 1]
    spread = (rng or random).uniform(-JITTER, JITTER)
    return max(0.0, base * (1 + spread))


class Verdict(StrEnum):
    """What one attempt's answer means for the delivery and its endpoint."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    GONE = "gone"
    """410: the receiver asks never to be called again; the endpoint is disabled."""


def verdict(status: int | None) -> Verdict:
    if status is not None and 200 <= status < 300:
        return Verdict.SUCCEEDED
    if status == 410:
        return Verdict.GONE
    return Verdict.FAILED


@dataclass(frozen=True, slots=True)
class Streak:
    """An endpoint's state after a run of recorded attempts: its failure streak's start,
    and, when one of the attempts disabled it, which one (its index) and why."""

    failing_since: datetime | None
    disabled_by: int | None
    disabled_reason: str | None


def follow_streak(
    active: bool,
    failing_since: datetime | None,
    verdicts: Sequence[Verdict],
    now: datetime,
    disable_before: datetime,
) -> Streak:
    """Apply attempts to an endpoint in the order they are recorded: a success ends the
    failure streak; a 410 disables an active endpoint; any other failure starts a streak
    (at `now`) unless one runs, and disables an active endpoint whose streak began before
    `disable_before`."""
    disabled_by: int | None = None
    reason: str | None = None
    for index, answer in enumerate(verdicts):
        if answer is Verdict.SUCCEEDED:
            failing_since = None
            continue
        if answer is Verdict.GONE:
            cause: str | None = GONE_REASON
        else:
            failing_since = failing_since or now
            cause = FAILING_REASON if failing_since <= disable_before else None
        if active and cause is not None:
            active, disabled_by, reason = False, index, cause
    return Streak(failing_since, disabled_by, reason)
