"""The handler registry: built-ins plus plugins from the `taskflowd.handlers` entry points.

Handlers are looked up by name in a dict filled at start-up; a name that arrives over the
API is never imported or resolved any other way.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Collection, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError, TaskflowError
from taskflowd.handlers.base import HandlerFn, HandlerSpec
from taskflowd.handlers.builtin import builtin_specs
from taskflowd.handlers.http import HttpHandler
from taskflowd.handlers.shell import ShellHandler
from taskflowd.handlers.ssrf import AddressPolicy

logger = logging.getLogger(__name__)

PLUGIN_GROUP = "taskflowd.handlers"
# Every built-in name, enabled or not: a plugin called "shell" must not stand in for a
# shell handler the operator left disabled.
BUILTIN_NAMES = frozenset({"echo", "sleep", "fail", "http", "shell"})
_HANDLER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class UnknownHandler(TaskflowError, LookupError):
    """No handler is registered under this name (disabled, misspelt or plugin missing)."""

    code = "unknown_handler"

    def __init__(self, name: str) -> None:
        super().__init__(f"no handler named {name!r}")
        self.name = name


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


def with_access(
    specs: Iterable[HandlerSpec], admin_only: Collection[str], open_to_users: Collection[str]
) -> list[HandlerSpec]:
    """`specs` with the operator's say on who may use them: names in `admin_only` become
    admin-only, names in `open_to_users` open to every user. A name no spec has is
    logged (its plugin may be missing) and ignored. Raises ValueError when `shell` is
    to be opened to users or a name is in both collections."""
    if "shell" in open_to_users:
        raise ValueError("the shell handler is for admins only; it cannot be opened to users")
    both = sorted(set(admin_only) & set(open_to_users))
    if both:
        raise ValueError(f"{', '.join(both)}: both admin-only and open to users")
    result = []
    for spec in specs:
        if spec.name in admin_only:
            spec = dataclasses.replace(spec, admin_only=True)
        elif spec.name in open_to_users:
            spec = dataclasses.replace(spec, admin_only=False)
        result.append(spec)
    unknown = sorted((set(admin_only) | set(open_to_users)) - {s.name for s in result})
    for name in unknown:
        logger.warning("handler access is configured for %r, but no handler has that name", name)
    return result


def load_plugin_specs(
    plugins: Iterable[EntryPoint], taken: Collection[str] = BUILTIN_NAMES
) -> list[HandlerSpec]:
    """Specs of the loadable plugins, in order; never raises for a bad plugin.

    A plugin whose name is in `taken` or was loaded before is skipped with a warning; one
    that fails to load is skipped with an error in the log.
    """
    loaded: list[HandlerSpec] = []
    seen = set(taken)
    for entry_point in plugins:
        where = f"{entry_point.name} = {entry_point.value}"
        if entry_point.name in seen:
            logger.warning("handler plugin %s skipped: the name is already taken", where)
            continue
        try:
            spec = plugin_spec(entry_point)
        except (Exception, SystemExit):  # a plugin's import-time sys.exit must not stop us
            logger.exception("handler plugin %s skipped: it failed to load", where)
            continue
        seen.add(spec.name)
        loaded.append(spec)
        logger.info("handler plugin %s loaded", where)
    return loaded


class HandlerRegistry:
    """Handlers by name; fixed after construction, closed once at shutdown."""

    def __init__(
        self,
        specs: Iterable[HandlerSpec],
        closers: Iterable[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self._specs: dict[str, HandlerSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"two handlers are named {spec.name!r}")
            # A spec that does not say is open: plugins were settled by plugin_spec.
            self._specs[spec.name] = dataclasses.replace(spec, admin_only=bool(spec.admin_only))
        self._closers = list(closers)

    @classmethod
    def build(
        cls,
        *,
        shell_enabled: bool,
        http_allow_private: bool,
        http_allowed_networks: tuple[str, ...],
        http_timeout_s: float,
        http_max_response_bytes: int,
        shell_max_output_bytes: int,
        load_plugins: bool = True,
        admin_only: Collection[str] = (),
        open_to_users: Collection[str] = (),
    ) -> HandlerRegistry:
        """The daemon's registry: built-ins (`shell` only if enabled), then plugins, with
        the operator's access overrides applied (`with_access`).

        Raises ValueError for a malformed CIDR in `http_allowed_networks` or unusable
        access overrides. Touches no event loop; the http session is created on first use.
        """
        policy = AddressPolicy.from_config(
            allow_private=http_allow_private, allowed_networks=http_allowed_networks
        )
        http = HttpHandler(
            policy=policy, timeout_s=http_timeout_s, max_response_bytes=http_max_response_bytes
        )
        specs = [*builtin_specs(), http.spec()]
        if shell_enabled:
            specs.append(ShellHandler(max_output_bytes=shell_max_output_bytes).spec())
        if load_plugins:
            specs += load_plugin_specs(entry_points(group=PLUGIN_GROUP))
        return cls(with_access(specs, admin_only, open_to_users), closers=[http.close])

    def get(self, name: str) -> HandlerSpec:
        """The handler called `name`; raises UnknownHandler if there is none."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownHandler(name) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def validate(self, name: str, payload: JSON) -> list[FieldError]:
        """Problems with running `payload` on handler `name`; never raises.

        An unknown name is reported on the `handler` field; a validator that crashes is
        logged and reported on `payload`, so a plugin bug cannot turn into a 500.
        """
        spec = self._specs.get(name)
        if spec is None:
            known = ", ".join(self.names())
            return [FieldError("handler", f"unknown handler {name!r}; available: {known}")]
        try:
            return list(spec.validate(payload))
        except Exception:
            logger.exception("validator of handler %r raised", name)
            return [FieldError("payload", f"handler {name!r} could not check this payload")]

    async def close(self) -> None:
        """Release handler resources (the http session); safe to call more than once."""
        closers, self._closers = self._closers, []
        for close in closers:
            try:
                await close()
            except Exception:
                logger.exception("closing a handler failed")
