"""Email addresses as account names: one normal form and a deliberately simple check."""

from __future__ import annotations

import re

MAX_EMAIL_LENGTH = 254
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"[^@\s\x00-\x1f\x7f\"(),:;<>\[\]\\]{{1,64}}@{_LABEL}(?:\.{_LABEL})*")


def normalize_email(value: str) -> str:
    """The stored form of an address (trimmed, lower case); ValueError when it is not one.

    The check is intentionally loose (a local part, `@`, DNS labels) so that real
    addresses, including single-label hosts such as `admin@localhost`, pass.
    """
    email = value.strip().lower()
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValueError(f"must be at most {MAX_EMAIL_LENGTH} characters long")
    if not _EMAIL.fullmatch(email):
        raise ValueError("must be an email address such as name@example.com")
    return email
