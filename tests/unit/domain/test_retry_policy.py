from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskflowd.domain.retry import DEFAULT_CAP_MS, RetryPolicy


def test_ceilings_double_from_backoff_then_stop_at_the_cap() -> None:
    policy = RetryPolicy(max_retries=10, backoff_ms=1000, cap_ms=10_000)
    assert [policy.ceiling_ms(n) for n in range(1, 8)] == [
        1000, 2000, 4000, 8000, 10_000, 10_000, 10_000
    ]  # fmt: skip


def test_default_cap_is_one_hour() -> None:
    policy = RetryPolicy(max_retries=30, backoff_ms=1000)
    assert policy.cap_ms == DEFAULT_CAP_MS == 3_600_000
    assert policy.ceiling_ms(12) == 2_048_000
    assert policy.ceiling_ms(13) == 3_600_000


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    policy = RetryPolicy(max_retries=3, backoff_ms=1000)
    assert policy.ceiling_ms(10**12) == policy.cap_ms
    assert 0 <= policy.delay_ms(10**12, random.Random(1)) <= policy.cap_ms


def test_zero_backoff_never_waits() -> None:
    policy = RetryPolicy(max_retries=3, backoff_ms=0)
    assert [policy.delay_ms(n, random.Random(n)) for n in range(1, 5)] == [0, 0, 0, 0]


def test_attempts_and_when_to_retry() -> None:
    policy = RetryPolicy(max_retries=3, backoff_ms=1000)
    assert policy.max_attempts == 4
    assert [policy.should_retry(n) for n in range(1, 7)] == [True, True, True, False, False, False]
    assert not RetryPolicy(max_retries=0, backoff_ms=1000).should_retry(1)


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_are_numbered_from_one(attempt: int) -> None:
    policy = RetryPolicy(max_retries=3, backoff_ms=1000)
    for method in (policy.should_retry, policy.ceiling_ms, policy.delay_ms):
        with pytest.raises(ValueError, match="start at 1"):
            method(attempt)


@pytest.mark.parametrize("field", ["max_retries", "backoff_ms", "cap_ms"])
def test_negative_settings_are_rejected(field: str) -> None:
    settings_ = {"max_retries": 1, "backoff_ms": 1, "cap_ms": 1, field: -1}
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**settings_)


@settings(deadline=None, max_examples=300)
@given(
    attempt=st.integers(1, 200),
    backoff_ms=st.integers(0, 86_400_000),
    cap_ms=st.integers(0, 10**10),
    seed=st.integers(0, 2**32),
)
def test_jitter_stays_within_zero_and_the_ceiling(
    attempt: int, backoff_ms: int, cap_ms: int, seed: int
) -> None:
    policy = RetryPolicy(max_retries=5, backoff_ms=backoff_ms, cap_ms=cap_ms)
    ceiling = policy.ceiling_ms(attempt)
    assert ceiling == min(cap_ms, backoff_ms * 2 ** (attempt - 1))
    assert 0 <= policy.delay_ms(attempt, random.Random(seed)) <= ceiling


def test_jitter_spreads_over_the_whole_range_and_is_reproducible() -> None:
    policy = RetryPolicy(max_retries=5, backoff_ms=1000)
    rng = random.Random(42)
    delays = [policy.delay_ms(3, rng) for _ in range(500)]
    assert min(delays) < 400 and max(delays) > 3600
    again = random.Random(42)
    assert delays == [policy.delay_ms(3, again) for _ in range(500)]
    assert all(0 <= policy.delay_ms(3) <= 4000 for _ in range(100))


def test_retry_after_hint_raises_the_delay_but_not_past_the_cap() -> None:
    policy = RetryPolicy(max_retries=5, backoff_ms=1000, cap_ms=60_000)
    assert policy.delay_for(1, 30.0001, random.Random(0)) == 30_001
    assert policy.delay_for(1, 120, random.Random(0)) == 60_000
    assert policy.delay_for(1, math.inf, random.Random(0)) == 60_000


@pytest.mark.parametrize("hint", [None, 0, -5, math.nan, 0.0001])
def test_absent_or_small_hint_leaves_the_jittered_delay(hint: float | None) -> None:
    policy = RetryPolicy(max_retries=5, backoff_ms=1000, cap_ms=60_000)
    for attempt in range(1, 6):
        jittered = policy.delay_ms(attempt, random.Random(attempt))
        assert policy.delay_for(attempt, hint, random.Random(attempt)) == max(
            jittered, 1 if hint == 0.0001 else 0
        )
