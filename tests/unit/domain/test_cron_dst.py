"""Next runs across DST changes: worked examples, then a brute-force oracle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from taskflowd.domain.schedule import next_run, next_runs, parse_cron, prev_run

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def steps(start: datetime, step: timedelta, count: int) -> list[datetime]:
    return [start + step * i for i in range(count)]


HOUR = timedelta(hours=1)
QUARTER = timedelta(minutes=15)
FIVE_S = timedelta(seconds=5)

# Daily wall-clock jobs: a skipped time runs once when the gap ends, a repeated time once.


def test_berlin_daily_0230_runs_at_0300_on_spring_forward() -> None:
    runs = next_runs(parse_cron("30 2 * * *"), BERLIN, utc(2026, 3, 27, 12), 3)
    # 2026-03-28 02:30 CET, 2026-03-29 03:00 CEST (02:30 does not exist), then 02:30 CEST.
    assert runs == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]


def test_berlin_daily_0230_runs_once_on_fall_back() -> None:
    runs = next_runs(parse_cron("30 2 * * *"), BERLIN, utc(2026, 10, 24, 12), 2)
    # 02:30 happens at 00:30Z (CEST) and 01:30Z (CET); only the first runs.
    assert runs == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]


def test_berlin_daily_0230_seen_from_inside_the_repeated_hour() -> None:
    spec = parse_cron("30 2 * * *")
    second_pass = utc(2026, 10, 25, 1, 10)  # 02:10 CET, after 02:30 CEST already ran
    assert next_run(spec, BERLIN, second_pass) == utc(2026, 10, 26, 1, 30)
    assert prev_run(spec, BERLIN, second_pass) == utc(2026, 10, 25, 0, 30)


def test_new_york_daily_0230_runs_at_0300_on_spring_forward() -> None:
    runs = next_runs(parse_cron("30 2 * * *"), NEW_YORK, utc(2026, 3, 7, 12), 3)
    assert runs == [utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30), utc(2026, 3, 10, 6, 30)]


def test_new_york_daily_0130_runs_once_on_fall_back() -> None:
    # New York repeats 01:00-02:00: 01:30 EDT is 05:30Z, 01:30 EST would be 06:30Z.
    runs = next_runs(parse_cron("30 1 * * *"), NEW_YORK, utc(2026, 10, 31, 12), 2)
    assert runs == [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]


def test_new_york_daily_0230_is_unaffected_by_fall_back() -> None:
    runs = next_runs(parse_cron("30 2 * * *"), NEW_YORK, utc(2026, 10, 31, 12), 2)
    assert runs == [utc(2026, 11, 1, 7, 30), utc(2026, 11, 2, 7, 30)]


def test_wall_clock_window_in_a_gap_runs_once() -> None:
    spec = parse_cron("*/15 2 * * *")
    assert next_runs(spec, BERLIN, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1, 0),
        utc(2026, 3, 30, 0, 0),
    ]
    # In the repeated hour only the first pass runs.
    assert next_runs(spec, BERLIN, utc(2026, 10, 24, 12), 5) == [
        *steps(utc(2026, 10, 25, 0, 0), QUARTER, 4),
        utc(2026, 10, 26, 1, 0),
    ]


# Interval jobs follow real time: consecutive runs stay evenly spaced in UTC.


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        (BERLIN, utc(2026, 3, 28, 22, 30)),
        (BERLIN, utc(2026, 10, 24, 22, 30)),
        (NEW_YORK, utc(2026, 3, 8, 4, 30)),
        (NEW_YORK, utc(2026, 11, 1, 3, 30)),
    ],
)
def test_hourly_job_fires_every_real_hour(zone: ZoneInfo, start: datetime) -> None:
    runs = next_runs(parse_cron("0 * * * *"), zone, start, 6)
    assert runs == steps(start + HOUR / 2, HOUR, 6)


@pytest.mark.parametrize(
    ("zone", "start"),
    [
        (BERLIN, utc(2026, 3, 28, 23, 40)),
        (BERLIN, utc(2026, 10, 24, 23, 40)),
        (NEW_YORK, utc(2026, 3, 8, 5, 40)),
        (NEW_YORK, utc(2026, 11, 1, 4, 40)),
    ],
)
def test_quarter_hourly_job_fires_every_real_quarter_hour(zone: ZoneInfo, start: datetime) -> None:
    runs = next_runs(parse_cron("*/15 * * * *"), zone, start, 16)
    assert runs == steps(start + timedelta(minutes=5), QUARTER, 16)


def test_quarter_hourly_job_runs_in_both_passes_of_the_repeated_hour() -> None:
    runs = next_runs(parse_cron("*/15 * * * *"), BERLIN, utc(2026, 10, 24, 23, 50), 8)
    local = [(r.astimezone(BERLIN).strftime("%H:%M"), r.astimezone(BERLIN).fold) for r in runs]
    assert local == [
        ("02:00", 0), ("02:15", 0), ("02:30", 0), ("02:45", 0),
        ("02:00", 1), ("02:15", 1), ("02:30", 1), ("02:45", 1),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        (BERLIN, utc(2026, 3, 29, 1)),
        (BERLIN, utc(2026, 10, 25, 1)),
        (NEW_YORK, utc(2026, 3, 8, 7)),
        (NEW_YORK, utc(2026, 11, 1, 6)),
    ],
)
def test_seconds_job_fires_every_five_real_seconds(zone: ZoneInfo, change: datetime) -> None:
    start = change - timedelta(seconds=12)
    runs = next_runs(parse_cron("*/5 * * * * *"), zone, start, 6)
    assert runs == steps(change - timedelta(seconds=10), FIVE_S, 6)
    assert prev_run(parse_cron("*/5 * * * * *"), zone, change) == change


def test_interval_job_does_not_make_up_skipped_wall_times() -> None:
    # 02:30 does not exist on 2026-03-29 in Berlin; an hourly :30 job stays an hour apart.
    runs = next_runs(parse_cron("30 * * * *"), BERLIN, utc(2026, 3, 28, 23, 45), 3)
    assert runs == [utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30)]


def test_prev_run_from_second_pass_sees_later_first_pass_wall_times() -> None:
    spec = parse_cron("30 * * * *")
    # 02:10 CET (second pass): the latest run was 02:30 CEST, a later wall time.
    assert prev_run(spec, BERLIN, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 30)
    # 03:10 CET: the latest run was 02:30 CET, in the second pass.
    assert prev_run(spec, BERLIN, utc(2026, 10, 25, 2, 10)) == utc(2026, 10, 25, 1, 30)


def test_next_run_from_first_pass_reaches_second_pass_before_later_wall_times() -> None:
    spec = parse_cron("10 * * * *")
    # 02:20 CEST: 02:10 CET (second pass) comes before 03:10 CET.
    assert next_run(spec, BERLIN, utc(2026, 10, 25, 0, 20)) == utc(2026, 10, 25, 1, 10)


# The oracle: list every wall time croniter matches, map each to UTC by the documented
# rules (scanning minute by minute for the end of a gap), and compare.

ORACLE_CASES = [
    # (expression, is it an interval job, hours of wall time listed each side of a change)
    ("30 2 * * *", False, 48),
    ("0 2 * * *", False, 48),
    ("30 1 * * *", False, 48),
    ("*/15 2 * * *", False, 48),
    ("0,30 1-3 * * *", False, 48),
    ("0 */2 * * *", False, 48),
    ("0 * * * *", True, 48),
    ("30 * * * *", True, 48),
    ("*/15 * * * *", True, 48),
    ("*/30 * * * * *", True, 6),
]
_NEAR = timedelta(hours=4)  # how far from a change the property test looks
ORACLE_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]


@cache
def transitions(zone_name: str, year: int) -> tuple[datetime, ...]:
    zone = ZoneInfo(zone_name)
    found = []
    moment = utc(year, 1, 1)
    while moment.year == year:
        if (moment + HOUR).astimezone(zone).utcoffset() != moment.astimezone(zone).utcoffset():
            minute = moment
            while minute.astimezone(zone).utcoffset() == moment.astimezone(zone).utcoffset():
                minute += timedelta(minutes=1)
            found.append(minute)
        moment += HOUR
    return tuple(found)


def end_of_gap(wall: datetime, zone: ZoneInfo) -> datetime:
    moment = (wall - max(_offsets(wall, zone))).replace(tzinfo=UTC, second=0)
    while moment.astimezone(zone).replace(tzinfo=None) <= wall:
        moment += timedelta(minutes=1)
    return moment


def _offsets(wall: datetime, zone: ZoneInfo) -> tuple[timedelta, timedelta]:
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


@cache
def oracle(
    expr: str, interval: bool, window_h: int, zone_name: str, change: datetime
) -> tuple[datetime, ...]:
    zone = ZoneInfo(zone_name)
    fields = expr.split()
    if len(fields) == 6:
        fields = fields[1:] + fields[:1]
    centre = change.astimezone(zone).replace(tzinfo=None)
    window = timedelta(hours=window_h)
    matches = croniter(" ".join(fields), centre - window, ret_type=datetime)
    fires = set()
    while (wall := matches.get_next()) < centre + window:
        first, second = _offsets(wall, zone)
        if first == second:
            fires.add((wall - first).replace(tzinfo=UTC))
        elif first > second:  # repeated wall time
            fires.add((wall - first).replace(tzinfo=UTC))
            if interval:
                fires.add((wall - second).replace(tzinfo=UTC))
        elif not interval:  # skipped wall time
            fires.add(end_of_gap(wall, zone))
    return tuple(sorted(fires))


Case = tuple[str, bool, int, str, datetime]


def oracle_cases() -> list[Case]:
    return [
        (expr, interval, window_h, zone, change)
        for expr, interval, window_h in ORACLE_CASES
        for zone in ORACLE_ZONES
        for change in transitions(zone, 2026)
    ]


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=f"{c[0]} {c[3]} {c[4]:%m-%d}") for c in oracle_cases()]
)
def test_runs_around_a_change_match_the_oracle(case: Case) -> None:
    expr, interval, _, zone_name, _ = case
    spec = parse_cron(expr)
    assert spec.all_hours is interval
    expected = oracle(*case)
    zone = ZoneInfo(zone_name)
    assert next_runs(spec, zone, expected[0], len(expected) - 1) == list(expected[1:])
    assert prev_run(spec, zone, expected[-1] - timedelta(microseconds=1)) == expected[-2]


@settings(deadline=None, max_examples=150)
@given(
    case=st.sampled_from(oracle_cases()),
    shift=st.timedeltas(-_NEAR, _NEAR),
)
def test_next_and_prev_run_match_the_oracle_anywhere_near_a_change(
    case: Case, shift: timedelta
) -> None:
    expr, _, _, zone_name, change = case
    expected = oracle(*case)
    spec, zone = parse_cron(expr), ZoneInfo(zone_name)
    moment = change + shift
    assert next_run(spec, zone, moment) == min(f for f in expected if f > moment)
    assert prev_run(spec, zone, moment) == max(f for f in expected if f <= moment)
    # The input's own zone must not matter, only the instant.
    assert next_run(spec, zone, moment.astimezone(zone)) == next_run(spec, zone, moment)
