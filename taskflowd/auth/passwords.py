"""Password hashing with bcrypt, always on a bounded thread pool off the event loop."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from taskflowd.domain.errors import FieldError

MIN_PASSWORD_BYTES = 8
MAX_PASSWORD_BYTES = 72  # bcrypt ignores everything after 72 bytes


def password_problems(password: str, field: str = "password") -> list[FieldError]:
    """Length rules on the UTF-8 encoding; bcrypt would silently truncate longer input."""
    size = len(password.encode("utf-8"))
    if size < MIN_PASSWORD_BYTES:
        return [FieldError(field, f"must be at least {MIN_PASSWORD_BYTES} bytes long")]
    if size > MAX_PASSWORD_BYTES:
        return [
            FieldError(
                field,
                f"must be at most {MAX_PASSWORD_BYTES} bytes in UTF-8 ({size} given); "
                "bcrypt cannot use more",
            )
        ]
    return []


class PasswordHasher:
    """bcrypt hashing and checking in at most `threads` threads at once."""

    def __init__(self, rounds: int = 12, threads: int = 2) -> None:
        self.rounds = rounds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bcrypt")
        self._dummy: bytes | None = None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # Both run in the pool, so bcrypt is imported off the event loop, at the first
    # password a node hashes or checks, never to start (issue 12).
    def _hash(self, password: str) -> str:
        import bcrypt

        salt = bcrypt.gensalt(rounds=self.rounds)
        return bcrypt.hashpw(password.encode("utf-8"), salt).decode("ascii")

    @staticmethod
    def _check(password: str, hashed: str) -> bool:
        import bcrypt

        try:
            return bcrypt.checkpw(password.encode("utf-8")[:72], hashed.encode("ascii"))
        except ValueError:
            return False

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hash, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check a password; with `hashed=None` spends the same time and returns False,
        so an unknown account cannot be told from a wrong password by timing."""
        loop = asyncio.get_running_loop()
        if hashed is None:
            if self._dummy is None:
                self._dummy = (await self.hash("not-a-real-password")).encode("ascii")
            await loop.run_in_executor(self._pool, self._check, password, self._dummy.decode())
            return False
        return await loop.run_in_executor(self._pool, self._check, password, hashed)
