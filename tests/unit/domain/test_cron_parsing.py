from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskflowd.domain.schedule import (
    MAX_CRON_LENGTH,
    CronError,
    TimezoneError,
    next_run,
    next_runs,
    parse_cron,
    validate_timezone,
)

UTC_ZONE = validate_timezone("UTC")
NOON = datetime(2026, 5, 4, 12, 0, 0, tzinfo=UTC)  # a Monday


def runs(expr: str, count: int = 3, after: datetime = NOON) -> list[datetime]:
    return next_runs(parse_cron(expr), UTC_ZONE, after, count)


def at(hour: int, minute: int = 0, second: int = 0, day: int = 4) -> datetime:
    return datetime(2026, 5, day, hour, minute, second, tzinfo=UTC)


def test_five_fields_are_minute_hour_dom_month_dow() -> None:
    assert runs("30 9 * * *", 2) == [at(9, 30, day=5), at(9, 30, day=6)]
    assert runs("0 9 * * 1-5", 2, after=datetime(2026, 5, 8, 12, tzinfo=UTC)) == [
        at(9, day=11),
        at(9, day=12),
    ]


def test_six_fields_put_seconds_first() -> None:
    assert runs("*/5 * * * * *") == [at(12, 0, 5), at(12, 0, 10), at(12, 0, 15)]
    assert runs("0 */2 * * * *") == [at(12, 2), at(12, 4), at(12, 6)]
    assert runs("30 0 9 * * *", 1) == [at(9, 0, 30, day=5)]
    assert parse_cron("*/5 * * * * *").has_seconds
    assert not parse_cron("*/5 * * * *").has_seconds


def test_next_run_is_strictly_after_and_utc() -> None:
    spec = parse_cron("0 * * * *")
    assert next_run(spec, UTC_ZONE, at(12)) == at(13)
    assert next_run(spec, UTC_ZONE, at(12, 0, 0).replace(microsecond=1)) == at(13)
    assert next_run(spec, UTC_ZONE, at(11, 59, 59).replace(microsecond=999_999)) == at(12)
    berlin_noon = NOON.astimezone(validate_timezone("Europe/Berlin"))
    result = next_run(spec, UTC_ZONE, berlin_noon)
    assert result == at(13)
    assert result.tzinfo is UTC


def test_schedules_end_before_the_year_10000() -> None:
    yearly = parse_cron("@yearly")
    assert next_runs(yearly, UTC_ZONE, datetime(9997, 6, 1, tzinfo=UTC), 5) == [
        datetime(9998, 1, 1, tzinfo=UTC),
        datetime(9999, 1, 1, tzinfo=UTC),
    ]
    with pytest.raises(CronError, match="has no run after"):
        next_run(yearly, UTC_ZONE, datetime(9999, 6, 1, tzinfo=UTC))


def test_next_runs_count() -> None:
    assert runs("* * * * *", 0) == []
    with pytest.raises(ValueError, match="count"):
        runs("* * * * *", -1)


def test_naive_after_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run(parse_cron("* * * * *"), UTC_ZONE, datetime(2026, 5, 4))


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@hourly", [at(13), at(14)]),
        ("@daily", [at(0, day=5), at(0, day=6)]),
        ("@midnight", [at(0, day=5), at(0, day=6)]),
        ("@weekly", [at(0, day=10), at(0, day=17)]),
        ("@monthly", [datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)]),
        ("@YEARLY", [datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)]),
    ],
)
def test_aliases(alias: str, expected: list[datetime]) -> None:
    assert runs(alias, 2) == expected


def test_whitespace_is_normalised_and_specs_compare_by_expression() -> None:
    assert parse_cron("  */5\t*  * * * ") == parse_cron("*/5 * * * *")
    assert parse_cron("  */5\t*  * * * ").expression == "*/5 * * * *"
    assert parse_cron("0 * * * *") != parse_cron("1 * * * *")


def test_quartz_and_croniter_extensions_that_work() -> None:
    assert runs("0 0 L * *", 2) == [
        datetime(2026, 5, 31, tzinfo=UTC),
        datetime(2026, 6, 30, tzinfo=UTC),
    ]
    assert runs("0 0 ? * MON", 1) == [at(0, day=11)]
    assert runs("0 0 * * 5#1", 1) == [datetime(2026, 6, 5, tzinfo=UTC)]
    assert runs("0 0 29 2 *", 1) == [datetime(2028, 2, 29, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("expr", "all_hours"),
    [
        ("* * * * *", True),
        ("*/15 * * * *", True),
        ("0 * * * *", True),
        ("0 0-23 * * *", True),
        ("0 0-11,12-23 * * *", True),
        ("*/5 * * * * *", True),
        ("0 * * 1 MON", True),
        ("30 2 * * *", False),
        ("*/15 2 * * *", False),
        ("0 */2 * * *", False),
        ("@daily", False),
    ],
)
def test_interval_jobs_are_those_matching_every_hour(expr: str, all_hours: bool) -> None:
    assert parse_cron(expr).all_hours is all_hours


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "* * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), or 6 with "
            "seconds first; got 4",
        ),
        ("* * * * * * *", "got 7"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("@reboot", "@reboot is not supported"),
        ("@every 5m", "unknown shortcut '@every 5m'"),
        ("60 * * * *", "minute field '60' is invalid; allowed: 0-59"),
        ("0 24 * * *", "hour field '24' is invalid; allowed: 0-23"),
        ("0 30 2 * *", "hour field '30' is invalid"),
        ("0 0 32 * *", "day-of-month field '32' is invalid"),
        ("0 0 1 13 *", "month field '13' is invalid; allowed: 1-12 or JAN-DEC"),
        ("0 0 * * 8", "day-of-week field '8' is invalid"),
        ("0 0 * * 5L", "day-of-week field '5L' is invalid"),
        ("61 * * * * *", "second field '61' is invalid; allowed: 0-59"),
        ("*/0 * * * *", "minute field '*/0' is invalid"),
        ("? * * * *", "minute field '?' is invalid"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("H * * * *", "hashed (H) and random (R) values are not supported"),
        ("R 0 * * *", "hashed (H) and random (R) values are not supported"),
        ("0 0 * * MON;", "day-of-week field 'MON;' has characters cron does not use"),
        ("٣ * * * *", "minute field '٣' has characters cron does not use"),
        ("x" * (MAX_CRON_LENGTH + 1), f"at most {MAX_CRON_LENGTH} characters"),
    ],
)
def test_invalid_expressions_say_what_to_fix(expr: str, message: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expr)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_month_and_weekday_names_are_not_mistaken_for_hash_or_random() -> None:
    assert runs("0 0 1 MAR,APR *", 1) == [datetime(2027, 3, 1, tzinfo=UTC)]
    assert runs("0 0 * * THU", 1) == [at(0, day=7)]


_CRON_ALPHABET = st.sampled_from(list("0123456789*/,-#?LW HRMONJANx@\t"))


@settings(deadline=None, max_examples=300)
@given(st.text(_CRON_ALPHABET, max_size=40))
def test_any_text_parses_or_raises_cron_error(expr: str) -> None:
    try:
        spec = parse_cron(expr)
    except CronError:
        return
    # Whatever parses must be usable.
    assert next_run(spec, UTC_ZONE, NOON) > NOON


@pytest.mark.parametrize(
    "name",
    ["UTC", "Europe/Berlin", "America/New_York", "America/Argentina/Buenos_Aires", "Etc/GMT+5"],
)
def test_known_zones_load(name: str) -> None:
    assert validate_timezone(name).key == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "must not be empty"),
        ("Mars/Base", "unknown time zone 'Mars/Base'"),
        ("Europe", "unknown time zone"),
        ("../etc/passwd", "is not an IANA time zone name"),
        ("/etc/localtime", "is not an IANA time zone name"),
        ("Europe/../Europe/Berlin", "is not an IANA time zone name"),
        ("localtime", "is not an IANA time zone name"),
        ("Europe/Berlin\x00", "is not an IANA time zone name"),
        ("A" * 65, "is not an IANA time zone name"),
    ],
)
def test_bad_zones_are_rejected(name: str, message: str) -> None:
    with pytest.raises(TimezoneError, match=message) as caught:
        validate_timezone(name)
    assert isinstance(caught.value, ValueError)
