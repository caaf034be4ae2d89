"""The few storage errors callers see; driver exceptions never cross the store boundary."""

from __future__ import annotations

from taskflowd.domain.errors import TaskflowError


class StoreError(TaskflowError):
    """A storage operation failed for a reason the caller cannot fix by changing input."""

    code = "store_error"


class StoreUnavailable(StoreError):
    """The database cannot be reached right now; the operation may succeed later."""

    code = "store_unavailable"


class DuplicateKey(StoreError):
    """A unique key (an email, a cron tick, an idempotency key) already exists."""

    code = "duplicate_key"


class NothingChanged(StoreError):
    """A step of a script that had to change a row changed none; nothing was written."""

    code = "nothing_changed"

    def __init__(self, step: int) -> None:
        super().__init__(f"step {step} of the script changed no row")
        self.step = step
