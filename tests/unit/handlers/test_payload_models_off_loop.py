"""The built-in handlers' payload models (and pydantic with them) are not loaded when a
node starts; the first job or payload check loads them in a thread, not on the event
loop (about 0.1 s that would hold every request). Checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import asyncio, json, sys, threading
from taskflowd.handlers.base import load_models
from taskflowd.handlers.registry import HandlerRegistry

MODELS = "taskflowd.handlers.payloads"
imported_on_main = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == MODELS:
            imported_on_main.append(threading.current_thread() is threading.main_thread())
        return None

registry = HandlerRegistry.build(
    shell_enabled=False, http_allow_private=False, http_allowed_networks=(),
    http_timeout_s=5, http_max_response_bytes=1000, shell_max_output_bytes=1000,
    load_plugins=False,
)
loaded_at_start = MODELS in sys.modules or "pydantic" in sys.modules
sys.meta_path.insert(0, Watch())

async def {entry}() -> list[str]:
    {load}
    return [e.field for e in registry.validate("sleep", {{"seconds": -1}})]

errors = asyncio.run({entry}())
print(json.dumps({{"at_start": loaded_at_start, "on_main": imported_on_main, "errors": errors}}))
"""


def _probe(entry: str, load: str) -> dict[str, object]:
    code = PROBE.format(entry=entry, load=load)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_a_payload_check_loads_the_models_in_a_thread() -> None:
    found = _probe("check", "await registry.load_models()")
    assert found["at_start"] is False
    assert found["on_main"] == [False], "imported on the event loop's thread"
    assert found["errors"], "the loaded models still check payloads"


def test_a_job_loads_its_handlers_models_in_a_thread() -> None:
    found = _probe("job", 'await load_models(registry.get("sleep"))')
    assert found["at_start"] is False
    assert found["on_main"] == [False], "imported on the event loop's thread"
