"""GCRA: a burst of N, then one request every 60/N seconds; bounded memory. Fake clock."""

from __future__ import annotations

import pytest

from taskflowd.auth.ratelimit import GcraRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_burst_then_refusal(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    decisions = [limiter.hit_now("k", 10) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]
    assert [d.remaining for d in decisions[:10]] == list(range(9, -1, -1))
    refused = decisions[-1]
    assert refused.remaining == 0
    assert refused.retry_after_s == pytest.approx(6.0)
    assert refused.reset_s == pytest.approx(60.0)
    assert decisions[0].retry_after_s == 0.0


def test_quota_comes_back_one_interval_at_a_time(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    for _ in range(10):
        limiter.hit_now("k", 10)
    clock.now += 5.9
    assert not limiter.hit_now("k", 10).allowed
    clock.now += 0.1
    assert limiter.hit_now("k", 10).allowed
    assert not limiter.hit_now("k", 10).allowed
    clock.now += 60
    assert limiter.hit_now("k", 10).remaining == 9


def test_refused_hits_cost_nothing(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    for _ in range(10):
        limiter.hit_now("k", 10)
    for _ in range(100):
        assert not limiter.hit_now("k", 10).allowed
    clock.now += 6
    assert limiter.hit_now("k", 10).allowed


def test_keys_are_independent(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    assert limiter.hit_now("a", 1).allowed
    assert not limiter.hit_now("a", 1).allowed
    assert limiter.hit_now("b", 1).allowed


def test_large_limits_allow_the_whole_burst(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    assert all(limiter.hit_now("k", 1200).allowed for _ in range(1200))
    assert not limiter.hit_now("k", 1200).allowed


def test_cost_counts_several_hits(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    assert limiter.hit_now("k", 10, cost=4).remaining == 6
    assert not limiter.hit_now("k", 10, cost=7).allowed
    assert limiter.hit_now("k", 10, cost=6).allowed


def test_idle_keys_are_forgotten(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    for n in range(5):
        limiter.hit_now(f"k{n}", 60)
    assert len(limiter) == 5
    clock.now += 2
    limiter.hit_now("fresh", 60)
    assert len(limiter) == 1


def test_key_count_is_capped(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(max_keys=3, clock=clock)
    for n in range(10):
        limiter.hit_now(f"k{n}", 1)
    assert len(limiter) == 3
    assert limiter.hit_now("k0", 1).allowed  # forgotten, so it starts afresh
    assert not limiter.hit_now("k9", 1).allowed


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        GcraRateLimiter(max_keys=0)
    with pytest.raises(ValueError, match="limit_per_min"):
        GcraRateLimiter().hit_now("k", 0)


async def test_hit_is_the_async_face_of_hit_now(clock: FakeClock) -> None:
    limiter = GcraRateLimiter(clock=clock)
    decision = await limiter.hit("k", 2)
    assert decision.allowed and decision.remaining == 1
