"""The handler registry: built-ins plus plugins from the `taskflowd.handlers` entry points.

Handlers are looked up by name in a dict filled at start-up; a name that arrives over the
API is never imported or resolved any other way. Plugins that failed to load are kept
too, by name, for /ready and the metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from importlib.metadata import entry_points

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError, TaskflowError
from taskflowd.handlers import plugins
from taskflowd.handlers.base import HandlerSpec, load_models
from taskflowd.handlers.builtin import builtin_specs
from taskflowd.handlers.http import HttpHandler
from taskflowd.handlers.shell import ShellHandler
from taskflowd.handlers.ssrf import AddressPolicy

logger = logging.getLogger(__name__)
PLUGIN_GROUP = plugins.PLUGIN_GROUP


class UnknownHandler(TaskflowError, LookupError):
    """No handler is registered under this name (disabled, misspelt or plugin missing)."""

    code = "unknown_handler"

    def __init__(self, name: str) -> None:
        super().__init__(f"no handler named {name!r}")
        self.name = name


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


class PluginsFailed(TaskflowError):
    """Plugins failed to load; `str()` names each with its reason, on one line."""

    code = "plugins_failed"


class HandlerRegistry:
    """Handlers by name; fixed after construction, closed once at shutdown."""

    def __init__(
        self,
        specs: Iterable[HandlerSpec],
        closers: Iterable[Callable[[], Awaitable[None]]] = (),
        plugin_failures: Iterable[plugins.PluginFailure] = (),
    ) -> None:
        self.plugin_failures = tuple(plugin_failures)
        """Plugins that failed to load: their handlers are missing on this node."""
        self._specs: dict[str, HandlerSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"two handlers are named {spec.name!r}")
            # A spec that does not say is open: plugins were settled by plugin_spec.
            self._specs[spec.name] = dataclasses.replace(spec, admin_only=bool(spec.admin_only))
        self._closers = list(closers)
        self._models_loaded = False

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
        loaded = plugins.LoadedPlugins()
        if load_plugins:
            loaded = plugins.load_plugins(entry_points(group=PLUGIN_GROUP))
        return cls(
            with_access([*specs, *loaded.specs], admin_only, open_to_users),
            closers=[http.close],
            plugin_failures=loaded.failures,
        )

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

    async def check_plugins(self) -> None:
        """A readiness probe: raises PluginsFailed naming every plugin that failed to load."""
        if self.plugin_failures:
            names = "; ".join(str(f) for f in self.plugin_failures)
            raise PluginsFailed(f"handler plugins failed to load: {names}")

    async def load_models(self) -> None:
        """Have every handler's payload models loaded (off the event loop) before
        `validate` checks a payload: call it before validating; at once after the first."""
        if self._models_loaded:
            return
        for spec in self._specs.values():
            await load_models(spec)
        self._models_loaded = True

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
