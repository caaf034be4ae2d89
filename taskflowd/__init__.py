"""taskflowd: a task scheduler and job runner in one asyncio daemon."""

__version__ = "0.1.0"
