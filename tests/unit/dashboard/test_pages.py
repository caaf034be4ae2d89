"""The dashboard's route table names each page's handler by module and name, imported
with the page's first request: a name that does not resolve would only show as an error
page on that request."""

from __future__ import annotations

import importlib
import inspect

from taskflowd.dashboard.app import PAGES


def test_every_page_names_a_handler_of_its_views_module() -> None:
    missing = []
    for method, path, views, name in PAGES:
        module = importlib.import_module(f"taskflowd.dashboard.views_{views}")
        handler = getattr(module, name, None)
        if not inspect.iscoroutinefunction(handler):
            missing.append((method, path, f"views_{views}.{name}"))
    assert missing == []
