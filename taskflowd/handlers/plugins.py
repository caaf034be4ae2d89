"""Handler plugins: distributions that name handlers in the `taskflowd.handlers` entry
points. Loading never raises for a bad plugin; what failed is kept, with a one-line
reason, so the node can say so on /ready and in its metrics instead of only in its log.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from typing import cast

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError
from taskflowd.handlers.base import HandlerFn, HandlerSpec

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "taskflowd.handlers"
# Every built-in name, enabled or not: a plugin called "shell" must not stand in for a
# shell handler the operator left disabled.
BUILTIN_NAMES = frozenset({"echo", "sleep", "fail", "http", "shell"})
_HANDLER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_MAX_REASON_CHARS = 300


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """A plugin that did not load: its handler name, its `module:attr`, and why."""

    name: str
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.target}): {self.reason}"


@dataclass(frozen=True, slots=True)
class LoadedPlugins:
    specs: list[HandlerSpec] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)


def _accept_any(payload: JSON) -> list[FieldError]:
    """Validator for plugins that bring none: the plugin checks its payload when it runs."""
    del payload
    return []


def _is_async_callable(obj: object) -> bool:
    # An instance whose class defines `async def __call__` counts too.
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(type(obj).__call__)


def plugin_spec(entry_point: EntryPoint) -> HandlerSpec:
    """Load one plugin as a HandlerSpec named after its entry point.

    The entry point must resolve to a HandlerSpec of the same name or to an async
    callable `(payload, ctx) -> result`. A plugin is for admins only unless its
    HandlerSpec says `admin_only=False`: a bare callable checks no payload, and a
    plugin written before it could say so keeps the access it had. Raises whatever
    loading raised, or TypeError/ValueError for an unusable object.
    """
    if not _HANDLER_NAME.match(entry_point.name):
        raise ValueError(f"name must match {_HANDLER_NAME.pattern}")
    obj = entry_point.load()
    if isinstance(obj, HandlerSpec):
        if obj.name != entry_point.name:
            raise ValueError(f"its HandlerSpec is named {obj.name!r}, not {entry_point.name!r}")
        return dataclasses.replace(obj, admin_only=obj.admin_only is not False)
    if _is_async_callable(obj):
        return HandlerSpec(entry_point.name, cast(HandlerFn, obj), _accept_any, admin_only=True)
    raise TypeError(f"{type(obj).__name__} is neither a HandlerSpec nor an async callable")


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def load_plugins(
    plugins: Iterable[EntryPoint], taken: Collection[str] = BUILTIN_NAMES
) -> LoadedPlugins:
    """The loadable plugins' specs in order, and the failures of the others; never raises
    for a bad plugin.

    A plugin whose name is in `taken` or was loaded before is skipped with a warning (the
    handler of that name still exists); one that fails to load is skipped with an error in
    the log and recorded as a failure.
    """
    loaded = LoadedPlugins()
    seen = set(taken)
    for entry_point in plugins:
        where = f"{entry_point.name} = {entry_point.value}"
        if entry_point.name in seen:
            logger.warning("handler plugin %s skipped: the name is already taken", where)
            continue
        try:
            spec = plugin_spec(entry_point)
        except (Exception, SystemExit) as exc:  # an import-time sys.exit must not stop us
            logger.exception("handler plugin %s skipped: it failed to load", where)
            loaded.failures.append(PluginFailure(entry_point.name, entry_point.value, _reason(exc)))
            continue
        seen.add(spec.name)
        loaded.specs.append(spec)
        logger.info("handler plugin %s loaded", where)
    return loaded
