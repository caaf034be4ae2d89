"""The handler contract: an async callable from (payload, context) to a JSON result."""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from taskflowd.domain.entities import JSON
from taskflowd.domain.errors import FieldError


@dataclass(frozen=True, slots=True)
class JobContext:
    """What a handler knows about the attempt it runs.

    `delivery_id` is stable for one attempt of one execution, so handlers and webhook
    receivers can use it to stay idempotent under at-least-once delivery.
    """

    execution_id: str
    task_id: str
    attempt: int
    delivery_id: str
    logger: logging.Logger | logging.LoggerAdapter[logging.Logger]


class JobError(Exception):
    """A handler's failure that it classified itself.

    `error_type` is a short machine string stored with the attempt; `retryable=False`
    sends the job straight to the dead-letter queue; `retry_after_s` asks for a later
    retry than the backoff policy would choose.
    """

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "error",
        retryable: bool = True,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable
        self.retry_after_s = retry_after_s


HandlerFn = Callable[[JSON, JobContext], Awaitable[JSON]]


class PayloadValidator(Protocol):
    def __call__(self, payload: JSON) -> list[FieldError]: ...


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A handler: its name, how it runs, and how it checks a payload when a task is made.

    `admin_only=True`: only admins may create or change tasks that use it; False: any
    user may. Left out (None), a built-in is open to every user and a plugin is for
    admins only. The operator's `handlers.admin_only` / `handlers.open_to_users` settings
    override either; in the registry the value is always a bool.

    As a workflow step, a handler receives `{"payload": …, "upstream": {key: result}}`
    (DESIGN.md §9) when `step_envelope` is True, the default for plugins. A handler whose
    payload has a fixed form (http, shell, sleep, fail) sets it False and receives the
    step's own payload, checked by `validate` when the workflow is saved.

    `models` names a module that `run` and `validate` import when first called (the
    built-ins' payload models, kept out of a node's start): `load_models` imports it in
    a thread before the first job or check, so the event loop never does.
    """

    name: str
    run: HandlerFn
    validate: PayloadValidator
    admin_only: bool | None = None
    step_envelope: bool = True
    models: str | None = None


PAYLOAD_MODELS = "taskflowd.handlers.payloads"
"""The module of the built-in handlers' payload models (and so of pydantic)."""


async def load_models(spec: HandlerSpec) -> None:
    """Import `spec.models`, once per process, off the event loop (about 0.1 s with
    pydantic on a node's first job)."""
    if spec.models is not None and spec.models not in sys.modules:
        await asyncio.to_thread(importlib.import_module, spec.models)
