"""The http handler's payload rules and its pure helpers (no network here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from yarl import URL

from taskflowd.handlers.http import HttpHandler, parse_retry_after, safe_url
from taskflowd.handlers.ssrf import AddressPolicy


def fields_of(handler: HttpHandler, payload: object) -> list[str]:
    return [e.field for e in handler.validate(payload)]


@pytest.mark.parametrize(
    "payload",
    [
        {"url": "https://example.com/hook"},
        {"url": "http://localhost:8080/"},  # names are checked when resolved, not here
        {"url": "https://8.8.8.8/", "method": "HEAD"},
        {
            "url": "https://example.com/",
            "method": "POST",
            "headers": {"Authorization": "Bearer x", "X-Id": ""},
            "body": {"a": [1, None]},
            "expectStatus": [200, 201],
        },
        {"url": "https://example.com/", "method": "PUT", "body": "plain text"},
        {"url": "https://example.com/", "expectStatus": 204},
        {"url": "https://example.com/", "body": None},
    ],
)
def test_good_payloads(payload: object) -> None:
    assert HttpHandler().validate(payload) == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "payload.url"),
        ({"url": ""}, "payload.url"),
        ({"url": 5}, "payload.url"),
        ({"url": "ftp://example.com/"}, "payload.url"),
        ({"url": "file:///etc/passwd"}, "payload.url"),
        ({"url": "example.com/path"}, "payload.url"),
        ({"url": "http://user:pw@example.com/"}, "payload.url"),
        ({"url": "http://[::1/"}, "payload.url"),
        ({"url": "https://example.com", "method": "get"}, "payload.method"),
        ({"url": "https://example.com", "method": "TRACE"}, "payload.method"),
        ({"url": "https://example.com", "headers": {"X-N": 1}}, "payload.headers.X-N"),
        ({"url": "https://example.com", "headers": {"X-A": "a\r\nX-B: b"}}, "payload.headers"),
        ({"url": "https://example.com", "headers": {"Bad Name": "v"}}, "payload.headers"),
        ({"url": "https://example.com", "headers": {"Host": "internal"}}, "payload.headers"),
        ({"url": "https://example.com", "headers": []}, "payload.headers"),
        ({"url": "https://example.com", "expectStatus": True}, "payload.expectStatus"),
        ({"url": "https://example.com", "expectStatus": 99}, "payload.expectStatus[0]"),
        ({"url": "https://example.com", "expectStatus": [200, "201"]}, "payload.expectStatus[1]"),
        ({"url": "https://example.com", "expectStatus": []}, "payload.expectStatus"),
        ({"url": "https://example.com", "timeout": 5}, "payload.timeout"),
        ("https://example.com", "payload"),
    ],
)
def test_bad_payloads(payload: object, field: str) -> None:
    assert fields_of(HttpHandler(), payload) == [field]


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/", "http://169.254.169.254/latest", "http://[::1]:80/", "http://[fe80::1]/"],
)
def test_literal_internal_addresses_are_refused_at_validation(url: str) -> None:
    errors = HttpHandler().validate({"url": url})
    assert [e.field for e in errors] == ["payload.url"]
    assert "refused" in errors[0].message


def test_allowed_network_passes_validation() -> None:
    policy = AddressPolicy.from_config(allow_private=False, allowed_networks=["127.0.0.1/32"])
    assert HttpHandler(policy=policy).validate({"url": "http://127.0.0.1:9/"}) == []


NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 0 ", 0.0),
        ("86400", 3600.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(days=1), usegmt=True), 0.0),
        (format_datetime(NOW + timedelta(days=1), usegmt=True), 3600.0),
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW, 3600.0) == expected


def test_safe_url_drops_credentials_query_and_fragment() -> None:
    url = URL("https://user:secret@example.com:8443/path/x?token=abc#frag")
    assert safe_url(url) == "https://example.com:8443/path/x"
    assert safe_url(URL("file:///etc/passwd?x=1")) == "file:///etc/passwd"
