"""Which ticks a scheduler pass enqueues after delays and outages, and first runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskflowd.domain.enums import MisfirePolicy, TaskType
from taskflowd.domain.schedule import (
    DEFAULT_MISFIRE_GRACE,
    DueTicks,
    due_ticks,
    initial_run_at,
    next_run,
    parse_cron,
)

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
HOURLY = parse_cron("0 * * * *")
EVERY_SECOND = parse_cron("* * * * * *")
RUN_ONCE, SKIP, RUN_ALL = MisfirePolicy.RUN_ONCE, MisfirePolicy.SKIP, MisfirePolicy.RUN_ALL


def at(hour: int, minute: int = 0, second: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 5, 4, hour, minute, second, microsecond, tzinfo=UTC)


def hourly(first: datetime, now: datetime, policy: MisfirePolicy, limit: int = 100) -> DueTicks:
    return due_ticks(HOURLY, UTC_ZONE, first, now, policy, limit)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_nothing_is_due_before_next_run_at(policy: MisfirePolicy) -> None:
    assert hourly(at(10), at(9, 59, 59), policy) == DueTicks([], at(10), 0)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_a_tick_within_the_grace_runs_normally(policy: MisfirePolicy) -> None:
    assert hourly(at(10), at(10), policy) == DueTicks([at(10)], at(11), 0)
    assert hourly(at(10), at(10) + DEFAULT_MISFIRE_GRACE, policy) == DueTicks([at(10)], at(11), 0)


@pytest.mark.parametrize("policy", list(MisfirePolicy))
def test_several_on_time_ticks_all_run(policy: MisfirePolicy) -> None:
    result = due_ticks(EVERY_SECOND, UTC_ZONE, at(10), at(10, 0, 3, 500), policy, 100)
    assert result == DueTicks([at(10), at(10, 0, 1), at(10, 0, 2), at(10, 0, 3)], at(10, 0, 4), 0)


def test_run_once_folds_an_outage_into_the_latest_tick() -> None:
    # Due: 10:00 .. 14:00; one run, scheduled for the most recent of them.
    assert hourly(at(10), at(14, 30), RUN_ONCE) == DueTicks([at(14)], at(15), 4)


def test_run_once_folds_only_the_misfires_and_runs_an_on_time_tick_as_well() -> None:
    # 10:00 .. 13:00 were missed and fold into one run of 13:00; 14:00 is on time.
    assert hourly(at(10), at(14, 0, 5), RUN_ONCE) == DueTicks([at(13), at(14)], at(15), 3)


def test_run_once_keeps_every_on_time_tick_after_a_late_one() -> None:
    # A timer back 12 s after a per-second task's next_run_at: 10:00:00 and 10:00:01 are
    # past the 10 s grace and fold into one run; 10:00:02 .. 10:00:12 are on time.
    result = due_ticks(EVERY_SECOND, UTC_ZONE, at(10), at(10, 0, 12), RUN_ONCE, 100)
    assert result == DueTicks(
        [at(10, 0, 1), *(at(10, 0, s) for s in range(2, 13))], at(10, 0, 13), 1
    )


def test_run_once_with_a_single_late_tick() -> None:
    assert hourly(at(10), at(10, 30), RUN_ONCE) == DueTicks([at(10)], at(11), 0)


def test_skip_drops_late_ticks() -> None:
    assert hourly(at(10), at(14, 30), SKIP) == DueTicks([], at(15), 5)


def test_skip_still_runs_the_tick_within_the_grace() -> None:
    assert hourly(at(10), at(14, 0, 5), SKIP) == DueTicks([at(14)], at(15), 4)


def test_skip_grace_boundary_and_custom_grace() -> None:
    just_late = at(10) + DEFAULT_MISFIRE_GRACE + timedelta(microseconds=1)
    assert hourly(at(10), just_late, SKIP) == DueTicks([], at(11), 1)
    wide = due_ticks(
        HOURLY, UTC_ZONE, at(10), at(10, 5), SKIP, 100, misfire_grace=timedelta(minutes=5)
    )
    assert wide == DueTicks([at(10)], at(11), 0)
    none = due_ticks(
        HOURLY, UTC_ZONE, at(10), at(10, 0, 0, 1), SKIP, 100, misfire_grace=timedelta(0)
    )
    assert none == DueTicks([], at(11), 1)


def test_run_all_runs_every_missed_tick_in_order() -> None:
    result = hourly(at(10), at(14, 30), RUN_ALL)
    assert result == DueTicks([at(10), at(11), at(12), at(13), at(14)], at(15), 0)


def test_run_all_keeps_only_the_most_recent_ticks() -> None:
    assert hourly(at(10), at(14, 30), RUN_ALL, limit=2) == DueTicks([at(13), at(14)], at(15), 3)
    assert hourly(at(10), at(14, 30), RUN_ALL, limit=1) == DueTicks([at(14)], at(15), 4)


def test_stored_next_run_at_counts_as_a_tick_even_off_the_grid() -> None:
    result = hourly(at(10, 17), at(12, 30), RUN_ALL)
    assert result == DueTicks([at(10, 17), at(11), at(12)], at(13), 0)


@pytest.mark.parametrize(
    ("policy", "ticks"),
    [(SKIP, []), (RUN_ONCE, [at(14)]), (RUN_ALL, [at(13), at(14)])],
)
def test_missed_count_saturates_at_the_count_limit(
    policy: MisfirePolicy, ticks: list[datetime]
) -> None:
    # 14 ticks are due (01:00 .. 14:00); the walk stops after counting 3 misses.
    capped = due_ticks(HOURLY, UTC_ZONE, at(1), at(14, 30), policy, 2, count_limit=3)
    assert capped == DueTicks(ticks, at(15), 3)
    exact = due_ticks(HOURLY, UTC_ZONE, at(1), at(14, 30), policy, 2, count_limit=20)
    assert exact == DueTicks(ticks, at(15), 14 - len(ticks))


def test_year_long_outage_of_a_per_second_cron_stays_bounded() -> None:
    down_since = datetime(2025, 5, 4, 10, tzinfo=UTC)
    now = datetime(2026, 5, 4, 10, 0, 0, 250_000, tzinfo=UTC)
    whole_now = now.replace(microsecond=0)
    # now is 0.25 s past a tick, so the grace holds that tick and the ones before it.
    grace_ticks = int(DEFAULT_MISFIRE_GRACE.total_seconds())

    once = due_ticks(EVERY_SECOND, BERLIN, down_since, now, RUN_ONCE, 50)
    # The year of misfires folds into one run of the newest; the grace's ticks all run.
    assert once.ticks == [whole_now - timedelta(seconds=s) for s in range(grace_ticks + 1)][::-1]
    assert once.next_run_at == whole_now + timedelta(seconds=1)
    assert once.missed >= 100

    skip = due_ticks(EVERY_SECOND, BERLIN, down_since, now, SKIP, 50)
    assert skip.ticks == [whole_now - timedelta(seconds=s) for s in range(grace_ticks)][::-1]
    assert skip.missed >= 100

    run_all = due_ticks(EVERY_SECOND, BERLIN, down_since, now, RUN_ALL, 50)
    assert run_all.ticks == [whole_now - timedelta(seconds=s) for s in range(50)][::-1]
    assert run_all.next_run_at == whole_now + timedelta(seconds=1)
    assert run_all.missed >= 100


def test_outage_across_fall_back_keeps_every_real_hour_and_one_daily_run() -> None:
    first = datetime(2026, 10, 24, 23, tzinfo=UTC)
    now = datetime(2026, 10, 25, 3, 30, tzinfo=UTC)
    hours = due_ticks(HOURLY, BERLIN, first, now, RUN_ALL, 100)
    assert hours.ticks == [first + timedelta(hours=h) for h in range(5)]
    daily = parse_cron("30 2 * * *")
    days = due_ticks(
        daily,
        BERLIN,
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 12, tzinfo=UTC),
        RUN_ALL,
        100,
    )
    assert days.ticks == [
        datetime(2026, 10, 24, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 27, 1, 30, tzinfo=UTC),
    ]
    assert days.next_run_at == datetime(2026, 10, 28, 1, 30, tzinfo=UTC)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="run_all_limit"):
        hourly(at(10), at(12), RUN_ALL, limit=0)
    with pytest.raises(ValueError, match="aware"):
        due_ticks(HOURLY, UTC_ZONE, at(10), datetime(2026, 5, 4, 12), SKIP, 1)
    with pytest.raises(ValueError, match="negative"):
        due_ticks(HOURLY, UTC_ZONE, at(10), at(12), SKIP, 1, misfire_grace=timedelta(-1))


def test_initial_run_of_a_one_time_task() -> None:
    now = at(12, 0, 0, 123)
    berlin_time = datetime(2026, 5, 5, 9, tzinfo=BERLIN)

    def one_time(scheduled_at: datetime | None) -> datetime:
        return initial_run_at(
            TaskType.ONE_TIME,
            now=now,
            scheduled_at=scheduled_at,
            delay_ms=None,
            cron=None,
            tz=BERLIN,
        )

    assert one_time(None) == now
    assert one_time(berlin_time) == datetime(2026, 5, 5, 7, tzinfo=UTC)
    assert one_time(berlin_time).tzinfo is UTC
    assert one_time(at(1)) == at(1)  # in the past: due at once


def test_initial_run_of_a_delayed_task() -> None:
    now = at(12)
    run_at = initial_run_at(
        TaskType.DELAYED, now=now, scheduled_at=None, delay_ms=90_500, cron=None, tz=UTC_ZONE
    )
    assert run_at == at(12, 1, 30, 500_000)
    with pytest.raises(ValueError, match="delay_ms"):
        initial_run_at(
            TaskType.DELAYED, now=now, scheduled_at=None, delay_ms=None, cron=None, tz=UTC_ZONE
        )


def test_initial_run_of_a_recurring_task() -> None:
    now = datetime(2026, 3, 28, 12, tzinfo=UTC)
    daily = parse_cron("30 2 * * *")
    run_at = initial_run_at(
        TaskType.RECURRING, now=now, scheduled_at=None, delay_ms=None, cron=daily, tz=BERLIN
    )
    assert run_at == next_run(daily, BERLIN, now) == datetime(2026, 3, 29, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="cron"):
        initial_run_at(
            TaskType.RECURRING, now=now, scheduled_at=None, delay_ms=None, cron=None, tz=BERLIN
        )
