"""Log lines: JSON or text, with context ids, and secrets masked wherever they appear."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator

import orjson
import pytest

from taskflowd import logs
from taskflowd.logs import REDACTED, redact, redact_text


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("password=hunter2 and more", "hunter2"),
        ('{"password": "correct horse battery", "email": "a@b.c"}', "horse battery"),
        ("{'token': 'abc def', 'ok': 1}", "abc def"),
        ("refresh_token=r3fr3sh&next=1", "r3fr3sh"),
        ("GET /cb?access_token=0123456789abcdef", "0123456789abcdef"),
        ("Authorization: Bearer eyJraWQiOiIxIn0.eyJzdWIiOiJ4In0.c2ln", "eyJzdWIiOiJ4In0"),
        ("authorization: bearer opaque-token-value-123", "opaque-token-value-123"),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("Cookie: session=s3ss10n; theme=dark", "s3ss10n"),
        ("Set-Cookie: sid=abcdef123; HttpOnly", "abcdef123"),
        ("X-Api-Key: k-123456", "k-123456"),
        ("client_secret: 's e c r e t'", "s e c r e t"),
        ("cannot connect to postgresql://app:pa55w0rd@db:5432/tf", "pa55w0rd"),
        ("redis://:r3d1s@cache:6379/0 refused", "r3d1s"),
        ("a jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4 leaked", "SflKxwRJ"),
        # JSON inside a repr inside a message: the quotes arrive backslash-escaped
        (r"""params ['{\"token\": \"abc def\"}']""", "abc def"),
        (r"""partial(f, "{\'apiKey\': \'k e y\'}")""", "k e y"),
        (r"""msg "{\\"secret\\": \\"s p a c e s\\"}" twice escaped""", "s p a c e s"),
    ],
)
def test_redact_text_masks_the_secret(text: str, secret: str) -> None:
    masked = redact_text(text)
    assert secret not in masked
    assert REDACTED in masked


@pytest.mark.parametrize(
    "text",
    [
        "job 42 finished in 3 ms",
        "the basic idea of token rotation",
        "GET /api/v1/tasks/{id} 200",
        "user@example.com logged in",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_masks_values_under_secret_keys_recursively() -> None:
    value = {
        "email": "a@b.c",
        "password": "pw",
        "nested": [{"apiKey": "k", "headers": {"Authorization": "Bearer x", "Accept": "*/*"}}],
        "note": "token=t0k3n",
    }
    assert redact(value) == {
        "email": "a@b.c",
        "password": REDACTED,
        "nested": [{"apiKey": REDACTED, "headers": {"Authorization": REDACTED, "Accept": "*/*"}}],
        "note": f"token={REDACTED}",
    }


def test_redaction_is_linear_on_large_blobs() -> None:
    # Quadratic backtracking would make this take hours; pytest-timeout ends it then.
    blob = "A" * 1_000_000
    assert redact_text(blob) == blob
    assert redact_text("x=1 " * 100_000) == "x=1 " * 100_000
    assert redact_text("passwordpassword" * 20_000 + "=1").endswith("=1")


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_context_and_mask_secrets(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("DEBUG", "json", stream)
    tokens = [
        logs.request_id_var.set("req-1"),
        logs.task_id_var.set("task-1"),
        logs.execution_id_var.set("exec-1"),
        logs.node_id_var.set("node-1"),
    ]
    log = logging.getLogger("taskflowd.test")
    try:
        log.info("login %s", {"email": "a@b.c", "password": "pa ss"}, extra={"fields": {"n": 1}})
        log.info("fields too", extra={"fields": {"token": "t", "msg": "cannot override"}})
        try:
            raise RuntimeError("connect postgresql://u:topsecret@h/db failed")
        except RuntimeError:
            log.exception("boom")
        log.info("bad %d arguments", "x")
    finally:
        for var, token in zip(
            (logs.request_id_var, logs.task_id_var, logs.execution_id_var, logs.node_id_var),
            tokens,
            strict=True,
        ):
            var.reset(token)
    text = stream.getvalue()
    assert "pa ss" not in text and "topsecret" not in text
    first, second, third, fourth = _json_lines(stream)
    assert set(first) >= {"time", "level", "logger", "msg", "request_id", "task_id"}
    assert (first["level"], first["logger"], first["n"]) == ("INFO", "taskflowd.test", 1)
    assert (first["request_id"], first["task_id"]) == ("req-1", "task-1")
    assert (first["execution_id"], first["node_id"]) == ("exec-1", "node-1")
    assert second["token"] == REDACTED and second["msg"] == "fields too"
    assert "RuntimeError" in str(third["exception"])
    assert "unformattable" in str(fourth["msg"])


def test_text_format_is_one_readable_line_with_context(restore_logging: None) -> None:
    stream = io.StringIO()
    logs.configure("INFO", "text", stream)
    token = logs.task_id_var.set("task-9")
    try:
        logging.getLogger("taskflowd.test").warning("Authorization: Bearer abcdefghijkl")
        logging.getLogger("taskflowd.test").debug("not shown at INFO")
        try:
            raise ValueError("password=swordfish")
        except ValueError:
            logging.getLogger("taskflowd.test").exception("failed")
    finally:
        logs.task_id_var.reset(token)
    text = stream.getvalue()
    assert "abcdefghijkl" not in text and "swordfish" not in text
    assert "not shown" not in text
    first = text.splitlines()[0]
    assert "WARNING" in first and "taskflowd.test" in first and first.endswith("task_id=task-9")
    assert not text.startswith("{")


class Terminal(io.StringIO):
    """A stream that says it is an interactive terminal (and, closed, fails as files do)."""

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return True


@pytest.mark.parametrize(
    ("fmt", "stream_type", "expected"),
    [
        ("auto", Terminal, "text"),
        ("auto", io.StringIO, "json"),
        ("json", Terminal, "json"),
        ("text", io.StringIO, "text"),
    ],
)
def test_the_format_follows_the_terminal_unless_forced(
    restore_logging: None, fmt: str, stream_type: type[io.StringIO], expected: str
) -> None:
    stream = stream_type()
    logs.configure("INFO", fmt, stream)
    logging.getLogger("taskflowd.test").info("hello")
    line = stream.getvalue().rstrip("\n")
    if expected == "json":
        assert orjson.loads(line)["msg"] == "hello"
    else:
        assert not line.startswith("{") and line.endswith("INFO    taskflowd.test: hello")


def test_a_closed_stream_is_no_terminal() -> None:
    stream = Terminal()
    stream.close()
    assert logs.resolve_format("auto", stream) == "json"


class GatedStream(io.StringIO):
    """A stream whose writes wait until the gate opens, as a stalled journal would."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, text: str) -> int:
        self.gate.wait(2)
        return super().write(text)


def test_a_stalled_stream_never_stalls_the_caller_and_loses_no_line(
    restore_logging: None,
) -> None:
    stream = GatedStream()
    handler = logs.configure("INFO", "json", stream, background=True)
    log = logging.getLogger("taskflowd.test")
    try:
        for n in range(20):
            token = logs.request_id_var.set(f"req-{n}")
            try:
                log.info("line %d password=%s", n, f"secret{n}")
            finally:
                logs.request_id_var.reset(token)
        assert stream.getvalue() == ""  # every call returned while the stream was stalled
        stream.gate.set()
        handler.flush()
        lines = _json_lines(stream)
        assert [line["request_id"] for line in lines] == [f"req-{n}" for n in range(20)]
        assert lines[7]["msg"] == f"line 7 password={REDACTED}"
        log.info("written before close returns")
    finally:
        stream.gate.set()
        handler.close()
    assert _json_lines(stream)[-1]["msg"] == "written before close returns"
