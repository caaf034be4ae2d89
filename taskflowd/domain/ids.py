"""Time-ordered ids: UUIDs in the version 7 layout (RFC 9562), for rows written often.

An index on a random id takes each new row at a random leaf, so every insert dirties a
page of its own; ids that grow with time append at the index's right edge, where
consecutive inserts share a page. Only ids that name rows are made here: secrets and
tokens stay random (`uuid.uuid4`, `secrets`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

_TAIL_BITS = 74
"""The bits after the 48-bit millisecond timestamp, less the version and variant."""
_RAND_B_BITS = 62


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimeOrderedIds:
    """UUID strings that sort, as text, in the order this object made them.

    Each holds the Unix time in milliseconds, then 74 bits that start random in each new
    millisecond and count up within it by a random step, so ids made in the same
    millisecond (or while the clock stepped back) still rise. Thread-safe.
    """

    def __init__(self, clock_ms: Callable[[], int] = _now_ms) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._ms = 0
        self._tail = 0

    def next(self) -> str:
        """A new id, greater than every id this object made before."""
        return self.take(1)[0]

    def take(self, count: int) -> list[str]:
        """`count` new ids, rising, each greater than every id this object made before:
        one lock, one clock reading and one draw of random steps for them all (a batch of
        runs makes a thousand at once)."""
        steps = memoryview(secrets.token_bytes(4 * count)).cast("I")
        values: list[int] = []
        with self._lock:
            ms, tail = self._clock_ms(), self._tail
            fresh = ms > self._ms
            ms = max(ms, self._ms)
            for step in steps:
                if fresh:
                    tail, fresh = secrets.randbits(_TAIL_BITS - 1), False
                else:
                    tail += 1 + step
                    if tail >> _TAIL_BITS:
                        ms, tail = ms + 1, secrets.randbits(_TAIL_BITS - 1)
                rand_a, rand_b = tail >> _RAND_B_BITS, tail & ((1 << _RAND_B_BITS) - 1)
                values.append(ms << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b)
            self._ms, self._tail = ms, tail
        return [_text(value) for value in values]


def _text(value: int) -> str:
    # str(uuid.UUID(int=value)) spelled out: a third of its time, and a step's end makes
    # one for each step it queues.
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_EXECUTION_IDS = TimeOrderedIds()
"""One sequence per process: ids from two sequences would not be ordered among themselves."""
_RUN_IDS = TimeOrderedIds()


def new_execution_id() -> str:
    """A new execution id: a version 7 UUID, later than every one this process made."""
    return _EXECUTION_IDS.next()


def new_execution_ids(count: int) -> list[str]:
    """`count` new execution ids, rising, as `new_execution_id` makes them one by one."""
    return _EXECUTION_IDS.take(count)


def new_run_id() -> str:
    """A new workflow run id, time-ordered as execution ids are: a run's id leads the keys
    of its step rows (workflow_steps, job_executions_step), so the steps of runs started
    together share index pages instead of each dirtying a random leaf."""
    return _RUN_IDS.next()
