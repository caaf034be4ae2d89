"""The dashboard's Jinja2 templates, loaded when the first dashboard request arrives.

A node nobody browses never imports Jinja2 nor compiles a template, and neither does any
node's start-up; the first page request builds the environment and compiles every
template once, off the event loop. With auto_reload off no request touches the disk for a
template again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from taskflowd.dashboard.formatting import install_filters

if TYPE_CHECKING:
    import jinja2


class Templates:
    """The templates of one directory; `load()` before the first `render()`."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._env: jinja2.Environment | None = None
        self._loading: asyncio.Future[jinja2.Environment] | None = None

    async def load(self) -> None:
        """Build the environment once, in a thread: concurrent first requests share the
        one build, and a request cancelled meanwhile does not cancel it."""
        if self._env is not None:
            return
        if self._loading is None:
            self._loading = asyncio.ensure_future(asyncio.to_thread(_environment, self._directory))
        self._env = await asyncio.shield(self._loading)

    def render(self, name: str, page: Mapping[str, Any]) -> str:
        if self._env is None:
            raise RuntimeError(f"template {name} rendered before the templates were loaded")
        return self._env.get_template(name).render(page)


TEMPLATES_KEY = web.AppKey("templates", Templates)


def _environment(directory: Path) -> jinja2.Environment:
    import jinja2  # ~2 MB and tens of ms: only a node that serves a page pays for it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        auto_reload=False,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    install_filters(env)
    for name in env.list_templates():
        env.get_template(name)
    return env
