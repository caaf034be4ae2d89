from __future__ import annotations

import pytest

from taskflowd.auth.emails import normalize_email


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Ada@Example.COM", "ada@example.com"),
        ("  bob@example.com ", "bob@example.com"),
        ("admin@localhost", "admin@localhost"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ],
)
def test_valid_addresses_are_normalised(given: str, stored: str) -> None:
    assert normalize_email(given) == stored


@pytest.mark.parametrize(
    "given",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@b@c.com",
        "a b@example.com",
        "a@-example.com",
        "a@example..com",
        "a@exa_mple.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_invalid_addresses_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="must be"):
        normalize_email(given)
