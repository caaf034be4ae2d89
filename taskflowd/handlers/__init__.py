"""Job handlers: what a job does when it runs.

`registry.HandlerRegistry.build(...)` assembles the built-ins (`echo`, `sleep`, `fail`,
`http`, and `shell` when enabled) and the plugins of the `taskflowd.handlers` entry-point
group; the worker looks a handler up by name and awaits `spec.run(payload, ctx)`.
Only the contract is re-exported here, so importing it pulls in no HTTP client.
"""

from taskflowd.handlers.base import HandlerFn, HandlerSpec, JobContext, JobError

__all__ = ["HandlerFn", "HandlerSpec", "JobContext", "JobError"]
