"""The registry: built-ins, the shell switch, lookups, validation and plugins."""

from __future__ import annotations

import logging
import sys
import textwrap
import uuid
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from taskflowd.domain.errors import FieldError, TaskflowError
from taskflowd.handlers.base import HandlerSpec, JobContext, JobError
from taskflowd.handlers.plugins import PLUGIN_GROUP, PluginFailure, load_plugins
from taskflowd.handlers.registry import (
    HandlerRegistry,
    PluginsFailed,
    UnknownHandler,
    with_access,
)

PLUGIN_SOURCE = """
from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import HandlerSpec


async def hello(payload, ctx):
    return {"hello": payload, "attempt": ctx.attempt}


def _object_only(payload):
    return [] if isinstance(payload, dict) else [FieldError("payload", "must be an object")]


greet = HandlerSpec("greet", hello, _object_only)
open_greet = HandlerSpec("open-greet", hello, _object_only, admin_only=False)
misnamed = HandlerSpec("other", hello, _object_only)


def not_async(payload, ctx):
    return payload


class Caller:
    async def __call__(self, payload, ctx):
        return "called"


caller = Caller()
"""


def make_ctx() -> JobContext:
    return JobContext("exec-1", "task-1", 2, "exec-1:2", logging.getLogger("test"))


def build(**overrides: object) -> HandlerRegistry:
    options: dict[str, object] = {
        "shell_enabled": False,
        "http_allow_private": False,
        "http_allowed_networks": (),
        "http_timeout_s": 5.0,
        "http_max_response_bytes": 1024,
        "shell_max_output_bytes": 1024,
        "load_plugins": False,
    }
    options.update(overrides)
    return HandlerRegistry.build(**options)  # type: ignore[arg-type]


@pytest.fixture
def plugin_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Importable plugin modules under unique names; forgotten again afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {"good": f"tf_plugin_{suffix}", "broken": f"tf_broken_{suffix}"}
    names["exits"] = f"tf_exits_{suffix}"
    (tmp_path / f"{names['good']}.py").write_text(PLUGIN_SOURCE)
    (tmp_path / f"{names['broken']}.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / f"{names['exits']}.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield names
    for name in names.values():
        sys.modules.pop(name, None)


def test_builtins_without_shell_unless_enabled() -> None:
    assert build().names() == ["echo", "fail", "http", "sleep"]
    assert "shell" not in build()
    with_shell = build(shell_enabled=True)
    assert "shell" in with_shell
    assert with_shell.get("shell").admin_only is True
    assert with_shell.get("http").admin_only is False


def test_unknown_handler_is_a_lookup_error_with_a_code() -> None:
    with pytest.raises(UnknownHandler) as caught:
        build().get("shell")
    assert isinstance(caught.value, TaskflowError)
    assert isinstance(caught.value, LookupError)
    assert caught.value.code == "unknown_handler"
    assert caught.value.name == "shell"


def test_validate_reports_an_unknown_handler_on_the_handler_field() -> None:
    errors = build().validate("os.system", {})
    assert [e.field for e in errors] == ["handler"]
    assert "os.system" in errors[0].message


def test_validate_delegates_to_the_handler() -> None:
    registry = build()
    assert registry.validate("sleep", {"seconds": 1}) == []
    assert [e.field for e in registry.validate("sleep", {"seconds": True})] == ["payload.seconds"]


def test_a_crashing_validator_becomes_a_field_error(caplog: pytest.LogCaptureFixture) -> None:
    def explode(payload: object) -> list[FieldError]:
        raise RuntimeError("plugin bug")

    async def run(payload: object, ctx: JobContext) -> object:
        return payload

    registry = HandlerRegistry([HandlerSpec("buggy", run, explode)])
    assert [e.field for e in registry.validate("buggy", {})] == ["payload"]
    assert "plugin bug" in caplog.text


def test_two_handlers_with_one_name_are_refused() -> None:
    spec = build().get("echo")
    with pytest.raises(ValueError, match="echo"):
        HandlerRegistry([spec, spec])


def test_a_malformed_allowed_network_fails_the_build() -> None:
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        build(http_allowed_networks=("10.0.0.0/33",))


async def test_close_shuts_the_http_handler_and_is_idempotent() -> None:
    registry = build()
    await registry.close()
    await registry.close()
    with pytest.raises(JobError) as caught:
        await registry.get("http").run({"url": "https://example.com/"}, make_ctx())
    assert caught.value.error_type == "handler_closed"


async def test_plugins_are_admin_only_unless_their_spec_says_otherwise(
    plugin_modules: dict[str, str],
) -> None:
    module = plugin_modules["good"]
    specs = load_plugins(
        [
            EntryPoint("hello", f"{module}:hello", PLUGIN_GROUP),
            EntryPoint("greet", f"{module}:greet", PLUGIN_GROUP),
            EntryPoint("caller", f"{module}:caller", PLUGIN_GROUP),
            EntryPoint("open-greet", f"{module}:open_greet", PLUGIN_GROUP),
        ]
    ).specs
    assert {s.name: s.admin_only for s in specs} == {
        "hello": True,  # a bare callable checks no payload
        "greet": True,  # a spec that does not say
        "caller": True,
        "open-greet": False,
    }
    registry = HandlerRegistry(specs)
    assert await registry.get("hello").run([1], make_ctx()) == {"hello": [1], "attempt": 2}
    assert await registry.get("caller").run(None, make_ctx()) == "called"
    assert registry.validate("hello", "anything") == []  # no validator of its own
    assert [e.field for e in registry.validate("greet", "not an object")] == ["payload"]


@pytest.mark.parametrize(
    ("name", "target", "log", "reason"),
    [
        ("shell", "good:hello", "already taken", None),
        ("echo", "good:hello", "already taken", None),
        ("renamed", "good:misnamed", "named 'other', not 'renamed'", "ValueError: its"),
        ("sync", "good:not_async", "neither a HandlerSpec", "TypeError: function is"),
        ("missing", "good:no_such_attribute", "failed to load", "AttributeError: module"),
        ("gone", "tf_no_such_module_anywhere:x", "failed to load", "ModuleNotFoundError: No"),
        ("broken", "broken:x", "boom at import", "RuntimeError: boom at import"),
        ("exits", "exits:x", "failed to load", "SystemExit: 3"),
        ("Bad Name", "good:hello", "name must match", "ValueError: name must match"),
    ],
)
def test_bad_plugins_are_logged_skipped_and_recorded(
    plugin_modules: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    name: str,
    target: str,
    log: str,
    reason: str | None,
) -> None:
    module_key, _, attr = target.partition(":")
    value = f"{plugin_modules.get(module_key, module_key)}:{attr}"
    good = EntryPoint("hello", f"{plugin_modules['good']}:hello", PLUGIN_GROUP)
    loaded = load_plugins([EntryPoint(name, value, PLUGIN_GROUP), good])
    assert [s.name for s in loaded.specs] == ["hello"]  # the bad one never stops the others
    assert log in caplog.text
    assert f"handler plugin {name} = {value} skipped" in caplog.text
    if reason is None:  # the built-in of that name is there: nothing is missing
        assert loaded.failures == []
    else:
        [failure] = loaded.failures
        assert (failure.name, failure.target) == (name, value)
        assert failure.reason.startswith(reason)
        assert "\n" not in failure.reason


async def test_the_registry_reports_plugins_that_failed() -> None:
    failure = PluginFailure(
        "thumbs", "tf_thumbs:spec", "ModuleNotFoundError: No module named 'PIL'"
    )
    healthy = build()
    await healthy.check_plugins()
    registry = HandlerRegistry([], plugin_failures=[failure])
    with pytest.raises(PluginsFailed) as caught:
        await registry.check_plugins()
    assert str(caught.value) == (
        "handler plugins failed to load: thumbs (tf_thumbs:spec): "
        "ModuleNotFoundError: No module named 'PIL'"
    )
    await healthy.close()


def test_the_operator_overrides_who_may_use_a_handler(
    plugin_modules: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    module = plugin_modules["good"]
    specs = load_plugins(
        [
            EntryPoint("greet", f"{module}:greet", PLUGIN_GROUP),
            EntryPoint("open-greet", f"{module}:open_greet", PLUGIN_GROUP),
        ]
    ).specs
    builtins = [build().get(name) for name in ("echo", "http")]
    changed = HandlerRegistry(
        with_access([*builtins, *specs], ("open-greet", "http", "gone"), ("greet",))
    )
    assert {n: changed.get(n).admin_only for n in changed.names()} == {
        "echo": False,
        "http": True,
        "greet": False,
        "open-greet": True,
    }
    assert "'gone', but no handler has that name" in caplog.text


@pytest.mark.parametrize(
    ("admin_only", "open_to_users", "message"),
    [((), ("shell",), "for admins only"), (("x",), ("x", "y"), "x: both")],
)
def test_access_overrides_that_cannot_hold_are_refused(
    admin_only: tuple[str, ...], open_to_users: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build(shell_enabled=True, admin_only=admin_only, open_to_users=open_to_users)


def test_a_second_plugin_with_the_same_name_is_skipped(
    plugin_modules: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    module = plugin_modules["good"]
    loaded = load_plugins(
        [
            EntryPoint("hello", f"{module}:hello", PLUGIN_GROUP),
            EntryPoint("hello", f"{module}:caller", PLUGIN_GROUP),
        ]
    )
    assert len(loaded.specs) == 1 and loaded.failures == []
    assert "already taken" in caplog.text


async def test_build_finds_plugins_of_installed_distributions(
    plugin_modules: dict[str, str], tmp_path: Path
) -> None:
    dist_info = tmp_path / "tf_fake_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tf-fake-plugin\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        textwrap.dedent(
            f"""\
            [{PLUGIN_GROUP}]
            hello = {plugin_modules["good"]}:hello
            http = {plugin_modules["good"]}:hello
            """
        )
    )
    registry = build(load_plugins=True)
    assert "hello" in registry
    assert registry.get("hello").admin_only is True
    assert await registry.get("hello").run("x", make_ctx()) == {"hello": "x", "attempt": 2}
    assert registry.get("http").admin_only is False  # the built-in was not replaced
    assert "hello" not in build(load_plugins=False)
    await registry.close()
