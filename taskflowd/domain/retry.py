"""Retry policy: how many attempts a job gets and how long to wait between them."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

DEFAULT_CAP_MS = 3_600_000
# backoff_ms * 2**64 is past any sane cap; clamping keeps the integer small for
# attempts numbered in the millions (dead-letter retries keep counting up).
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: the wait before attempt n+1 after attempt n
    failed is uniform in [0, min(cap_ms, backoff_ms * 2**(n-1))] milliseconds.
    """

    max_retries: int
    backoff_ms: int
    cap_ms: int = DEFAULT_CAP_MS

    def __post_init__(self) -> None:
        for name in ("max_retries", "backoff_ms", "cap_ms"):
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")

    @property
    def max_attempts(self) -> int:
        """The first attempt plus `max_retries` retries."""
        return self.max_retries + 1

    def should_retry(self, attempt: int) -> bool:
        """Whether the job gets another attempt after attempt number `attempt` (1-based)
        failed; False means it goes to the dead-letter queue."""
        _check_attempt(attempt)
        return attempt < self.max_attempts

    def ceiling_ms(self, attempt: int) -> int:
        """The un-jittered wait after attempt `attempt` failed: the most `delay_ms` returns."""
        _check_attempt(attempt)
        return min(self.cap_ms, self.backoff_ms << min(attempt - 1, _MAX_EXPONENT))

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> int:
        """A full-jitter wait in [0, ceiling_ms(attempt)]; pass `rng` for reproducibility."""
        ceiling = self.ceiling_ms(attempt)
        return rng.randint(0, ceiling) if rng is not None else random.randint(0, ceiling)

    def delay_for(
        self, attempt: int, retry_after_s: float | None, rng: random.Random | None = None
    ) -> int:
        """The wait after attempt `attempt` failed, honouring a handler's Retry-After hint.

        The result is at least the hint (when it is a positive number of seconds) and at
        least the jittered delay, but never more than cap_ms.
        """
        jittered = self.delay_ms(attempt, rng)
        if retry_after_s is None or math.isnan(retry_after_s) or retry_after_s <= 0:
            return jittered
        hint_ms = retry_after_s * 1000
        if hint_ms >= self.cap_ms:
            return self.cap_ms
        return max(jittered, math.ceil(hint_ms))


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
