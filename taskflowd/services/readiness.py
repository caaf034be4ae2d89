"""Readiness: whether each backend answers right now, checked live on every call.

A check passes when its probe returns within the timeout. A failing check names a
reason fit for a public endpoint: the kind of failure and a short, credential-free
message, never a URL with a password in it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from taskflowd.domain.errors import TaskflowError
from taskflowd.logs import redact_text

Probe = Callable[[], Awaitable[Any]]
MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    latency_ms: float
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Report:
    checks: dict[str, CheckResult]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]


def public_reason(exc: BaseException, timeout_s: float) -> str:
    """What went wrong, short and with credentials masked."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not isinstance(exc, TaskflowError):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text = redact_text(message)
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


class Readiness:
    """Named probes run concurrently, each under `timeout_s`."""

    def __init__(self, probes: Sequence[tuple[str, Probe]], timeout_s: float = 2.0) -> None:
        if len({name for name, _ in probes}) != len(probes):
            raise ValueError("readiness check names must be unique")
        self._probes = list(probes)
        self.timeout_s = timeout_s

    async def _check(self, probe: Probe) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await probe()
        except Exception as exc:
            elapsed_ms = (time.perf_counter() - started) * 1000
            return CheckResult(False, round(elapsed_ms, 3), public_reason(exc, self.timeout_s))
        return CheckResult(True, round((time.perf_counter() - started) * 1000, 3))

    async def check(self) -> Report:
        results = await asyncio.gather(*(self._check(probe) for _, probe in self._probes))
        return Report(
            {name: result for (name, _), result in zip(self._probes, results, strict=True)}
        )
