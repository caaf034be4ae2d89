"""When tasks run: cron parsing, next runs in an IANA time zone across DST, and misfires.

Cron expressions have 5 fields (minute hour day-of-month month day-of-week) or 6 with
seconds first, as in BullMQ and Quartz. Day-of-month and day-of-week follow Vixie cron:
when both are restricted, a day matching either one fires.

An expression names wall-clock times in the task's zone. Where DST makes a wall time
occur twice or not at all, the job's hour field decides, as in Vixie cron:

- An *interval job* (the hour field matches every hour, e.g. ``*/15 * * * *``,
  ``0 * * * *``, ``*/5 * * * * *``) follows real elapsed time: in a repeated hour it fires
  in both passes, and the wall times a spring-forward gap skips simply do not happen.
- A *wall-clock job* (any other hour field, e.g. ``30 2 * * *``) fires once per wall
  time: in a repeated hour only in the first pass (fold=0), and a wall time skipped by
  a gap runs once, at the first instant after the gap (03:00 local in Europe/Berlin).

Fire instants are therefore unique and strictly increasing in UTC. Iteration runs
croniter on naive wall times and maps each one to UTC here, because croniter's own DST
handling has known bugs.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskflowd.domain.enums import MisfirePolicy, TaskType

MAX_CRON_LENGTH = 200
DEFAULT_MISFIRE_GRACE = timedelta(seconds=10)
"""A tick at most this late is on time: scheduler lag or a quick restart loses nothing."""
DEFAULT_MISSED_COUNT_LIMIT = 100

if TYPE_CHECKING:
    from croniter import croniter

_FIELDS_5 = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FIELDS_6 = ("second", *_FIELDS_5)
_ALLOWED = {
    "second": "0-59",
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L (last day), nW (nearest weekday) or ?",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday), n#k (k-th weekday n), Ln "
    "(last weekday n) or ?",
}
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELD_CHARS = re.compile(r"[0-9A-Za-z*/,#?\-]+")
_WORD = re.compile(r"[A-Za-z]+")
_ZONE_NAME = re.compile(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*")
_NOT_ZONES = frozenset({"localtime", "posixrules"})
_MAX_ZONE_LENGTH = 64
# croniter searches 50 years from here. Cron has no year field, and no expression's gap
# between matches is that long (the worst, Feb 29 on a given weekday, is 40 years), so
# finding nothing means the expression never fires.
_PROBE_START = datetime(2000, 1, 1)
_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CronError(ValueError):
    """A cron expression taskflowd cannot run; the message says what to change."""


class TimezoneError(ValueError):
    """A time zone name that is not a known IANA zone."""


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed, validated cron expression; build it with `parse_cron`.

    `all_hours` is true for interval jobs (the hour field matches every hour), which
    follow real time across DST changes; see the module docstring.
    """

    expression: str
    has_seconds: bool
    all_hours: bool
    _matcher: croniter[datetime] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class DueTicks:
    """What a scheduler pass does for one task.

    `ticks` are the instants to enqueue, ascending (each one is a job's scheduledFor);
    `next_run_at` is the first tick after now; `missed` counts the ticks that were due but
    not enqueued (skipped, or folded into one run), for the misfire metric.
    """

    ticks: list[datetime]
    next_run_at: datetime
    missed: int


def parse_cron(expr: str) -> CronSpec:
    """Parse 5 fields, or 6 with seconds first, or @yearly/@monthly/@weekly/@daily/@hourly.

    Raises CronError for anything else, for hashed (H) or random (R) values (each node
    would compute a different schedule) and for expressions that never fire.
    """
    if len(expr) > MAX_CRON_LENGTH:
        raise CronError(f"is too long: at most {MAX_CRON_LENGTH} characters, got {len(expr)}")
    text = " ".join(expr.split())
    if not text:
        raise CronError("is empty: expected 5 fields, or 6 with seconds first")
    fields = _expand_alias(text).split(" ")
    if len(fields) not in (5, 6):
        raise CronError(
            "expected 5 fields (minute hour day-of-month month day-of-week), "
            f"or 6 with seconds first; got {len(fields)}"
        )
    names = _FIELDS_6 if len(fields) == 6 else _FIELDS_5
    for name, value in zip(names, fields, strict=True):
        _check_field_syntax(name, value)
    matcher = _build_matcher(fields, names)
    import croniter as lib

    try:
        copy.copy(matcher).get_next()
    except lib.CroniterError:
        raise CronError(
            "never fires: no date matches the day-of-month, month and day-of-week fields "
            "(e.g. February 30)"
        ) from None
    hours = matcher.expanded[lib.HOUR_FIELD]
    # croniter writes any full hour range as "*"; counting too keeps this right if it stops.
    all_hours = "*" in hours or len(set(hours)) == 24
    return CronSpec(text, len(fields) == 6, all_hours, matcher)


def validate_timezone(name: str) -> ZoneInfo:
    """The IANA zone called `name` (e.g. "Europe/Berlin", "UTC"); raises TimezoneError."""
    if not name:
        raise TimezoneError("must not be empty; use an IANA name such as UTC or Europe/Berlin")
    if len(name) > _MAX_ZONE_LENGTH or _ZONE_NAME.fullmatch(name) is None or name in _NOT_ZONES:
        raise TimezoneError(f"{name[:_MAX_ZONE_LENGTH]!r} is not an IANA time zone name")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(
            f"unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def next_run(spec: CronSpec, tz: ZoneInfo, after: datetime) -> datetime:
    """The first fire instant strictly after `after` (aware, any zone), as aware UTC.

    Raises CronError if the schedule has no run left in the years datetime covers (to 9999).
    """
    return _next_fire(_Grid(spec), tz, _as_utc(after, "after"))


def next_runs(spec: CronSpec, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants after `after`, ascending, aware UTC.

    Fewer only if the schedule runs out at the end of the year 9999.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    grid = _Grid(spec)
    runs: list[datetime] = []
    at = _as_utc(after, "after")
    try:
        while len(runs) < count:
            at = _next_fire(grid, tz, at)
            runs.append(at)
    except CronError:
        pass
    return runs


def prev_run(spec: CronSpec, tz: ZoneInfo, at_or_before: datetime) -> datetime:
    """The latest fire instant at or before `at_or_before` (aware), as aware UTC."""
    return _prev_fire(_Grid(spec), tz, _as_utc(at_or_before, "at_or_before"))


def due_ticks(
    spec: CronSpec,
    tz: ZoneInfo,
    last_next_run: datetime,
    now: datetime,
    policy: MisfirePolicy,
    run_all_limit: int,
    *,
    misfire_grace: timedelta = DEFAULT_MISFIRE_GRACE,
    count_limit: int = DEFAULT_MISSED_COUNT_LIMIT,
) -> DueTicks:
    """Decide which ticks of a recurring task to enqueue now.

    `last_next_run` is the task's stored next_run_at, the earliest tick not yet enqueued,
    and counts as a tick itself. The due ticks are it and every fire instant after it up
    to `now`. A due tick at most `misfire_grace` old is on time; an older one is a
    misfire. With no misfire every due tick is enqueued; otherwise `policy` decides:

    - RUN_ONCE: the misfires fold into one run, of the newest misfire (its scheduledFor
      is the most recent instant that was missed); on-time ticks run as usual.
    - SKIP: misfires are dropped, on-time ticks are enqueued.
    - RUN_ALL: every due tick runs, but at most the `run_all_limit` most recent ones (the
      latest runs carry the freshest data; the oldest are dropped).

    The returned next_run_at is always after `now`. CPU is bounded whatever the outage:
    one step per on-time tick and per enqueued run, plus up to `count_limit` steps to
    count `missed`, which is exact while it is at most `count_limit` and otherwise a
    lower bound of at least `count_limit`.
    """
    if run_all_limit < 1:
        raise ValueError(f"run_all_limit must be >= 1, got {run_all_limit}")
    if misfire_grace < timedelta(0) or count_limit < 0:
        raise ValueError("misfire_grace and count_limit must not be negative")
    first = _as_utc(last_next_run, "last_next_run")
    now = _as_utc(now, "now")
    if first > now:
        return DueTicks([], first, 0)
    grid = _Grid(spec)
    following = _next_fire(grid, tz, now)
    on_time: list[datetime] = []
    late: list[datetime] = []
    for tick in _due_newest_first(grid, tz, first, now):
        if now - tick <= misfire_grace:
            on_time.append(tick)
            continue
        # Look at the misfires the policy may enqueue, then count up to count_limit more.
        if policy is MisfirePolicy.RUN_ALL:
            wanted = max(run_all_limit - len(on_time), 0)
        else:
            wanted = 1 if policy is MisfirePolicy.RUN_ONCE else 0
        if len(late) >= wanted + count_limit:
            break
        late.append(tick)
    on_time.reverse()
    if not late:
        return DueTicks(on_time, following, 0)
    if policy is MisfirePolicy.SKIP:
        return DueTicks(on_time, following, len(late))
    if policy is MisfirePolicy.RUN_ONCE:
        return DueTicks([late[0], *on_time], following, len(late) - 1)
    kept = (on_time[::-1] + late)[:run_all_limit]
    return DueTicks(kept[::-1], following, len(on_time) + len(late) - len(kept))


def initial_run_at(
    type: TaskType,
    *,
    now: datetime,
    scheduled_at: datetime | None,
    delay_ms: int | None,
    cron: CronSpec | None,
    tz: ZoneInfo,
) -> datetime:
    """A new task's first next_run_at, aware UTC.

    ONE_TIME: `scheduled_at` (a past instant is due at once), else `now`. DELAYED: `now`
    (the creation time) plus `delay_ms`. RECURRING: the first tick after `now`.
    """
    now = _as_utc(now, "now")
    if type is TaskType.ONE_TIME:
        return now if scheduled_at is None else _as_utc(scheduled_at, "scheduled_at")
    if type is TaskType.DELAYED:
        if delay_ms is None:
            raise ValueError("a DELAYED task needs delay_ms")
        return now + timedelta(milliseconds=delay_ms)
    if cron is None:
        raise ValueError("a RECURRING task needs a cron expression")
    return next_run(cron, tz, now)


def _expand_alias(text: str) -> str:
    if not text.startswith("@"):
        return text
    word = text.lower()
    if word == "@reboot":
        raise CronError("@reboot is not supported: tasks have no boot event; use a ONE_TIME task")
    if word not in _ALIASES:
        raise CronError(
            f"unknown shortcut {text!r}: use @yearly, @monthly, @weekly, @daily, @hourly, "
            "or 5 fields (6 with seconds first)"
        )
    return _ALIASES[word]


def _check_field_syntax(name: str, value: str) -> None:
    if _FIELD_CHARS.fullmatch(value) is None:
        raise CronError(
            f"{name} field {value!r} has characters cron does not use; allowed: "
            f"{_ALLOWED[name]}, with lists (,), ranges (-) and steps (/)"
        )
    if any(word.upper() in ("H", "R") for word in _WORD.findall(value)):
        raise CronError(
            f"{name} field {value!r}: hashed (H) and random (R) values are not supported, "
            "because every node must compute the same schedule"
        )


def _build_matcher(fields: list[str], names: tuple[str, ...]) -> croniter[datetime]:
    # Imported on the first schedule parsed: a node with no cron task never needs it
    # (start-up time and memory, issue 12).
    import croniter as lib

    # croniter wants seconds last, BullMQ/Quartz users write them first.
    ordered = fields[1:] + fields[:1] if len(fields) == 6 else fields
    try:
        return lib.croniter(" ".join(ordered), _PROBE_START, ret_type=datetime)
    except (lib.CroniterError, ValueError, KeyError, IndexError, TypeError) as exc:
        error = exc
    # Blame the first field that is invalid on its own; the rest stay wildcards.
    for index, (name, value) in enumerate(zip(names, fields, strict=True)):
        probe = ["*"] * len(fields)
        probe[index] = value
        probe = probe[1:] + probe[:1] if len(fields) == 6 else probe
        try:
            lib.croniter(" ".join(probe), _PROBE_START)
        except (lib.CroniterError, ValueError, KeyError, IndexError, TypeError):
            raise CronError(
                f"{name} field {value!r} is invalid; allowed: {_ALLOWED[name]}, "
                "with lists (,), ranges (-) and steps (/)"
            ) from None
    raise CronError(f"is invalid: {error}") from None


def _as_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {moment!r}")
    return moment.astimezone(UTC)


class _Grid:
    """The naive wall times a spec matches, walked with a private copy of its croniter."""

    __slots__ = ("_it", "all_hours", "expression")

    def __init__(self, spec: CronSpec) -> None:
        self._it = copy.copy(spec._matcher)
        self.all_hours = spec.all_hours
        self.expression = spec.expression

    def after(self, wall: datetime) -> datetime:
        """The first matching wall time strictly after `wall`."""
        return self._step(wall.replace(microsecond=0), backwards=False)

    def at_or_before(self, wall: datetime) -> datetime:
        """The last matching wall time at or before `wall`."""
        # Matches are whole seconds; whole-second starts keep croniter's float exact.
        return self._step(wall.replace(microsecond=0) + _SECOND, backwards=True)

    def before(self, wall: datetime) -> datetime:
        """The last matching wall time strictly before `wall`."""
        return self.at_or_before(wall - _MICROSECOND)

    def _step(self, start: datetime, *, backwards: bool) -> datetime:
        import croniter as lib

        self._it.set_current(start, force=True)
        try:
            return self._it.get_prev() if backwards else self._it.get_next()
        except (lib.CroniterError, ValueError, OverflowError):
            raise CronError(
                f"{self.expression!r} has no run {'before' if backwards else 'after'} {start}"
            ) from None


def _offsets(wall: datetime, tz: ZoneInfo) -> tuple[timedelta, timedelta]:
    """UTC offsets of a naive wall time read as fold=0 and fold=1; equal unless near DST."""
    first = wall.replace(tzinfo=tz, fold=0).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None
    return first, second


def _utc(wall: datetime, offset: timedelta) -> datetime:
    return (wall - offset).replace(tzinfo=UTC)


def _offset_at(seconds: int, tz: ZoneInfo) -> timedelta | None:
    return (_EPOCH + timedelta(seconds=seconds)).astimezone(tz).utcoffset()


def _change(
    wall: datetime, off0: timedelta, off1: timedelta, tz: ZoneInfo
) -> tuple[datetime, datetime, datetime]:
    """For a wall time in a gap or fold: (the change instant, UTC; the wall time where the
    old offset ends; the wall time where the new offset starts)."""
    # The change lies in (lo, hi]; zoneinfo keeps no public list of transitions, and
    # they fall on whole seconds, so bisect the seconds between the two readings.
    lo = int((_utc(wall, max(off0, off1)) - _EPOCH).total_seconds())
    hi = int((_utc(wall, min(off0, off1)) - _EPOCH).total_seconds())
    old = _offset_at(lo, tz)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_at(mid, tz) == old:
            lo = mid
        else:
            hi = mid
    change = _EPOCH + timedelta(seconds=hi)
    naive = change.replace(tzinfo=None)
    return change, naive + off0, naive + off1


def _local(moment: datetime, tz: ZoneInfo) -> tuple[datetime, bool]:
    """`moment` as naive wall time in `tz`, and whether it is a repeated hour's 2nd pass."""
    local = moment.astimezone(tz)
    return local.replace(tzinfo=None, fold=0), local.fold == 1


def _next_fire(grid: _Grid, tz: ZoneInfo, after: datetime) -> datetime:
    wall, second_pass = _local(after, tz)
    if grid.all_hours and not second_pass:
        early = _next_in_fold(grid, tz, wall)
        if early is not None:
            return early
    candidate = grid.after(wall)
    while True:
        off0, off1 = _offsets(candidate, tz)
        if off0 == off1:
            return _utc(candidate, off0)
        change, old_end, new_start = _change(candidate, off0, off1, tz)
        if off0 < off1:  # the wall time falls in a spring-forward gap
            if not grid.all_hours:
                return change
            candidate = grid.after(new_start - _SECOND)
            continue
        first_pass = _utc(candidate, off0)
        if first_pass > after:
            return first_pass
        if grid.all_hours:
            return _utc(candidate, off1)
        # A wall-clock job already ran this wall time in the first pass.
        candidate = grid.after(old_end - _SECOND)


def _next_in_fold(grid: _Grid, tz: ZoneInfo, wall: datetime) -> datetime | None:
    """If `wall` is in a repeated hour's first pass: the interval job's next tick there."""
    off0, off1 = _offsets(wall, tz)
    if off0 <= off1:
        return None
    _, fold_end, fold_start = _change(wall, off0, off1, tz)
    candidate = grid.after(wall)
    if candidate < fold_end:
        return _utc(candidate, off0)
    # No first-pass tick left: the second pass comes before anything after the fold.
    candidate = grid.after(fold_start - _SECOND)
    if candidate < fold_end:
        return _utc(candidate, off1)
    return None


def _prev_fire(grid: _Grid, tz: ZoneInfo, at: datetime) -> datetime:
    wall, second_pass = _local(at, tz)
    if second_pass:
        late = _prev_in_fold(grid, tz, wall)
        if late is not None:
            return late
    candidate = grid.at_or_before(wall)
    while True:
        off0, off1 = _offsets(candidate, tz)
        if off0 == off1:
            return _utc(candidate, off0)
        change, old_end, _ = _change(candidate, off0, off1, tz)
        if off0 < off1:  # the wall time falls in a spring-forward gap
            if not grid.all_hours:
                return change
            candidate = grid.before(old_end)
            continue
        if grid.all_hours and _utc(candidate, off1) <= at:
            return _utc(candidate, off1)
        return _utc(candidate, off0)


def _prev_in_fold(grid: _Grid, tz: ZoneInfo, wall: datetime) -> datetime | None:
    """If `wall` is in a repeated hour's second pass: the latest tick in that hour."""
    off0, off1 = _offsets(wall, tz)
    _, fold_end, fold_start = _change(wall, off0, off1, tz)
    if grid.all_hours:
        candidate = grid.at_or_before(wall)
        if candidate >= fold_start:
            return _utc(candidate, off1)
    # Every first-pass tick of the fold, even at a later wall time, came before `wall`.
    candidate = grid.before(fold_end)
    if candidate >= fold_start:
        return _utc(candidate, off0)
    return None


def _due_newest_first(
    grid: _Grid, tz: ZoneInfo, first: datetime, now: datetime
) -> Iterator[datetime]:
    """Fire instants in (first, now], newest first, then `first` itself."""
    tick = _prev_fire(grid, tz, now)
    while tick > first:
        yield tick
        tick = _prev_fire(grid, tz, tick - _MICROSECOND)
    yield first
