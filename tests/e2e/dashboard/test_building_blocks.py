"""The dashboard's pure parts, without a daemon: signed sessions, the task form's
parsing, and the text filters the pages use."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskflowd.dashboard import formatting
from taskflowd.dashboard.context import safe_next
from taskflowd.dashboard.forms import (
    Form,
    blank_form,
    input_name,
    read_form,
    read_run_form,
    to_run_spec,
    to_spec,
)
from taskflowd.dashboard.sessions import ABSOLUTE_TTL_S, IDLE_TTL_S, Flash, Sessions
from taskflowd.domain.enums import TaskType
from taskflowd.domain.errors import FieldError

SECRET = "s" * 48


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_cookie_round_trips_and_resists_tampering() -> None:
    sessions = Sessions(SECRET)
    value = sessions.issue("user-1", 3)
    session = sessions.verify(value)
    assert session is not None
    assert (session.user_id, session.token_version) == ("user-1", 3)
    body, mac = value.split(".")
    assert sessions.verify(f"{body}x.{mac}") is None
    assert sessions.verify(f"{body}.{mac[:-2]}AA") is None
    assert Sessions("t" * 48).verify(value) is None  # another secret
    assert sessions.verify("") is None
    assert sessions.verify("x" * 5000) is None


def test_sessions_expire_when_idle_and_at_their_absolute_limit() -> None:
    clock = Clock()
    sessions = Sessions(SECRET, clock=clock)
    first = sessions.verify(sessions.issue("u", 0))
    assert first is not None
    clock.now += IDLE_TTL_S - 1
    assert first.due_for_renewal(clock.now)
    renewed_value = sessions.issue("u", 0, previous=first)
    renewed = sessions.verify(renewed_value)
    assert renewed is not None and renewed.session_id == first.session_id
    clock.now += IDLE_TTL_S - 1
    assert sessions.verify(renewed_value) is not None
    clock.now = first.issued_at + ABSOLUTE_TTL_S - 10
    late = sessions.issue("u", 0, previous=renewed)
    assert sessions.verify(late) is not None
    clock.now += 11
    assert sessions.verify(late) is None


def test_a_revoked_session_is_refused_and_the_list_stays_bounded() -> None:
    clock = Clock()
    sessions = Sessions(SECRET, clock=clock, max_revoked=2)
    values = [sessions.issue(f"u{i}", 0) for i in range(3)]
    for value in values:
        session = sessions.verify(value)
        assert session is not None
        sessions.revoke(session)
    assert sessions.verify(values[2]) is None
    assert len(sessions._revoked) <= 2


def test_csrf_tokens_belong_to_their_session() -> None:
    sessions = Sessions(SECRET)
    one = sessions.verify(sessions.issue("u", 0))
    two = sessions.verify(sessions.issue("u", 0))
    assert one is not None and two is not None
    token = sessions.csrf_token(one)
    assert sessions.check_csrf(one, token)
    assert not sessions.check_csrf(two, token)
    assert not sessions.check_csrf(one, None)
    assert not sessions.check_csrf(one, "")


def test_flash_messages_are_signed_and_link_only_to_the_dashboard() -> None:
    sessions = Sessions(SECRET)
    assert sessions.read_flash(sessions.flash("ok", "Saved.")) == Flash("ok", "Saved.")
    assert sessions.read_flash(Sessions("t" * 48).flash("ok", "forged")) is None
    assert sessions.read_flash("garbage") is None
    link = ("/dashboard/executions/e1", "Open the execution")
    assert sessions.read_flash(sessions.flash("ok", "Queued.", link)) == Flash(
        "ok", "Queued.", link
    )
    elsewhere = sessions.flash("ok", "Queued.", ("https://evil.example/", "Open"))
    assert sessions.read_flash(elsewhere) == Flash("ok", "Queued.")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "/dashboard/"),
        ("/dashboard/tasks?status=FAILED", "/dashboard/tasks?status=FAILED"),
        ("https://evil.example/", "/dashboard/"),
        ("//evil.example/dashboard/", "/dashboard/"),
        ("/dashboard//evil.example", "/dashboard/"),
        ("/dashboard/\\evil", "/dashboard/"),
        ("/api/v1/tasks", "/dashboard/"),
    ],
)
def test_only_dashboard_paths_are_followed_after_sign_in(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


def _form(**values: str) -> dict[str, str]:
    data = dict(blank_form().values)
    data.update(values)
    return data


def test_the_form_reports_every_problem_at_once() -> None:
    form = read_form(
        _form(name=" ", cronExpression="61 * * * *", payload="{oops", priority="high", timeout="x")
    )
    assert to_spec(form) is None
    assert set(form.errors) == {"name", "cronExpression", "payload", "priority", "timeout"}
    assert "line 1" in form.errors["payload"]


def test_the_form_reads_delays_in_seconds_and_local_times_in_the_zone() -> None:
    delayed = to_spec(read_form(_form(name="later", type="DELAYED", delay="1.5")))
    assert delayed is not None and delayed.delay_ms == 1500 and delayed.cron_expression is None
    once = to_spec(
        read_form(
            _form(
                name="once",
                type="ONE_TIME",
                scheduledAt="2030-07-01T09:30",
                timezone="Europe/Berlin",
            )
        )
    )
    assert once is not None and once.scheduled_at is not None
    assert once.scheduled_at.astimezone(UTC) == datetime(2030, 7, 1, 7, 30, tzinfo=UTC)
    bad = read_form(_form(name="x", type="DELAYED", delay="soon"))
    assert to_spec(bad) is None and "seconds" in bad.errors["delay"]


def test_an_edit_form_keeps_the_type_of_the_task() -> None:
    form = read_form(_form(name="x", type="DELAYED"), fixed_type=TaskType.RECURRING)
    spec = to_spec(form)
    assert spec is not None and spec.type is TaskType.RECURRING


def test_an_on_demand_task_takes_no_schedule_from_the_form() -> None:
    form = read_form(_form(name="on call", type="ON_DEMAND", scheduledAt="2030-07-01T09:30"))
    spec = to_spec(form)
    assert spec is not None and spec.type is TaskType.ON_DEMAND
    assert (spec.cron_expression, spec.scheduled_at, spec.delay_ms) == (None, None, None)


def test_service_errors_land_on_their_inputs() -> None:
    assert input_name("payload.url") == "payload"
    assert input_name("delayMs") == "delay"
    assert input_name("payload[0]") == "payload"
    assert input_name("cronExpression") == "cronExpression"
    form = Form({"payload": "{}", "delay": ""})
    form.add(
        [
            FieldError("payload.url", "Field required"),
            FieldError("delayMs", "give runAt or delayMs, not both"),
            FieldError("handler", "unknown handler 'x'"),
        ]
    )
    assert form.errors == {
        "payload": "url: Field required",
        "delay": "give runAt or delayMs, not both",
    }
    assert form.problem == "handler: unknown handler 'x'"


def _run_form(**values: str) -> dict[str, str]:
    return {"payload": "", "priority": "", "delay": "", "runAt": "", **values}


def test_the_run_form_reads_a_payload_of_its_own_and_when_to_run() -> None:
    spec = to_run_spec(read_run_form(_run_form(payload='{"n": 1}', delay="2.5")), "UTC")
    assert spec is not None and spec.has_payload and spec.payload == {"n": 1}
    assert spec.delay_ms == 2500 and spec.run_at is None and spec.priority is None
    empty = to_run_spec(read_run_form(_run_form(priority="7")), "UTC")
    assert empty is not None and empty.has_payload and empty.payload is None
    assert empty.priority == 7 and empty.delay_ms is None and empty.run_at is None
    timed = to_run_spec(read_run_form(_run_form(runAt="2030-07-01T09:30")), "Europe/Berlin")
    assert timed is not None and timed.run_at == datetime(2030, 7, 1, 7, 30, tzinfo=UTC)


def test_the_run_form_reports_every_problem_and_keeps_what_was_typed() -> None:
    typed = _run_form(payload='{"n": ', priority="eleven", delay="5", runAt="2030-07-01T09:30")
    form = read_run_form(typed)
    assert to_run_spec(form, "UTC") is None
    assert set(form.errors) == {"payload", "priority", "delay"}
    assert "is not valid JSON" in form.errors["payload"]
    assert "not both" in form.errors["delay"]
    assert form.values == typed


def test_text_filters() -> None:
    assert formatting.duration(None) == "—"
    assert formatting.duration(0) == "< 1 ms"
    assert formatting.duration(250) == "250 ms"
    assert formatting.duration(1500) == "1.50 s"
    assert formatting.duration(125_000) == "2 min 5 s"
    assert formatting.duration(3_725_000) == "1 h 2 min"
    assert formatting.error_text({"type": "timeout", "message": "too slow"}) == "timeout: too slow"
    assert formatting.error_text("plain") == "plain"
    assert formatting.label("ONE_TIME") == "One time"
    big = formatting.pretty_json({"x": "y" * (formatting.MAX_JSON_CHARS + 10)})
    assert big.endswith("more characters)")
