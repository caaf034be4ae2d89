"""The webhook rules free of I/O: the retry schedule with its jitter, what an answer
means, the stored event list, and secrets."""

from __future__ import annotations

import base64
import random
from datetime import UTC, datetime, timedelta

from taskflowd.webhooks.rules import (
    FAILING_REASON,
    GONE_REASON,
    JITTER,
    Streak,
    Verdict,
    events_column,
    events_from_column,
    follow_streak,
    new_secret,
    next_delay_s,
    secret_key,
    verdict,
)

SCHEDULE = (5.0, 30.0, 120.0, 600.0, 3600.0)


def test_each_failure_waits_its_entry_then_the_last_one_repeats() -> None:
    rng = random.Random(7)
    for attempts, base in [(1, 5.0), (2, 30.0), (5, 3600.0), (6, 3600.0), (30, 3600.0)]:
        for _ in range(50):
            delay = next_delay_s(attempts, SCHEDULE, rng)
            assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)


def test_jitter_spreads_the_retries() -> None:
    rng = random.Random(1)
    assert len({next_delay_s(1, SCHEDULE, rng) for _ in range(20)}) == 20


def test_only_2xx_succeeds_and_410_is_gone() -> None:
    assert [verdict(s) for s in (200, 204, 299)] == [Verdict.SUCCEEDED] * 3
    assert verdict(410) is Verdict.GONE
    assert [verdict(s) for s in (None, 301, 400, 404, 429, 500)] == [Verdict.FAILED] * 6


def test_the_event_column_matches_whole_names() -> None:
    column = events_column(["task.updated", "execution.completed", "task.updated"])
    assert column == ",execution.completed,task.updated,"
    assert events_from_column(column) == ["execution.completed", "task.updated"]
    assert ",task.update," not in column


def test_a_secret_is_a_prefixed_base64_key() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and secret != new_secret()
    assert secret_key(secret) == base64.b64decode(secret[len("whsec_") :])
    assert len(secret_key(secret)) >= 24


NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BEFORE = NOW - timedelta(days=5)
LONG_AGO = NOW - timedelta(days=6)
OK, FAIL, GONE = Verdict.SUCCEEDED, Verdict.FAILED, Verdict.GONE


def test_a_streak_follows_a_batch_in_order() -> None:
    assert follow_streak(True, LONG_AGO, [FAIL, OK], NOW, BEFORE) == Streak(None, 0, FAILING_REASON)
    assert follow_streak(True, LONG_AGO, [OK, FAIL], NOW, BEFORE) == Streak(NOW, None, None)
    assert follow_streak(True, None, [FAIL, FAIL], NOW, BEFORE) == Streak(NOW, None, None)
    assert follow_streak(True, None, [OK], NOW, BEFORE) == Streak(None, None, None)


def test_only_the_first_attempt_that_disables_an_endpoint_counts() -> None:
    assert follow_streak(True, None, [OK, GONE, GONE], NOW, BEFORE) == Streak(None, 1, GONE_REASON)
    assert follow_streak(True, LONG_AGO, [FAIL, GONE], NOW, BEFORE) == Streak(
        LONG_AGO, 0, FAILING_REASON
    )


def test_a_disabled_endpoint_keeps_its_streak_but_is_not_disabled_again() -> None:
    assert follow_streak(False, LONG_AGO, [FAIL, GONE], NOW, BEFORE) == Streak(LONG_AGO, None, None)
    assert follow_streak(False, LONG_AGO, [OK], NOW, BEFORE) == Streak(None, None, None)
