"""Which addresses the http handler may reach, and the resolver that enforces it."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from taskflowd.handlers.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, blocked_reason


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.100.100.200", "cloud metadata"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("198.18.0.1", "reserved"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "cloud metadata"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "reserved"),
        ("2001::1", "reserved"),  # Teredo
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::1", None),  # 6to4 of a public address
    ],
)
def test_blocked_reason(address: str, reason: str | None) -> None:
    assert blocked_reason(ip(address)) == reason


def test_default_policy_refuses_internal_and_allows_public() -> None:
    policy = AddressPolicy()
    assert policy.refusal(ip("127.0.0.1")) == "loopback"
    assert policy.refusal(ip("8.8.8.8")) is None


def test_allowed_networks_open_exactly_what_they_list() -> None:
    policy = AddressPolicy.from_config(allow_private=False, allowed_networks=["127.0.0.1/32"])
    assert policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("::ffff:127.0.0.1")) is None  # the same address, mapped
    assert policy.refusal(ip("127.0.0.2")) == "loopback"
    assert policy.refusal(ip("::1")) == "loopback"
    assert policy.refusal(ip("10.0.0.1")) == "private"


def test_allow_private_still_refuses_cloud_metadata() -> None:
    policy = AddressPolicy.from_config(allow_private=True, allowed_networks=())
    assert policy.refusal(ip("10.0.0.1")) is None
    assert policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("fe80::1")) is None
    assert policy.refusal(ip("169.254.169.254")) == "cloud metadata"
    assert policy.refusal(ip("fd00:ec2::254")) == "cloud metadata"


def test_metadata_opens_only_when_listed_explicitly() -> None:
    policy = AddressPolicy.from_config(allow_private=False, allowed_networks=["169.254.0.0/16"])
    assert policy.refusal(ip("169.254.169.254")) is None


def test_a_malformed_cidr_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="not-a-net"):
        AddressPolicy.from_config(allow_private=False, allowed_networks=["not-a-net"])


class FixedResolver(AbstractResolver):
    """Answers every query with the same addresses, like a rebinding DNS server might."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.addresses
        ]

    async def close(self) -> None:
        self.closed = True


async def test_resolver_drops_refused_answers_and_keeps_the_rest() -> None:
    resolver = GuardedResolver(FixedResolver("10.0.0.5", "8.8.8.8", "::1"), AddressPolicy())
    answers = await resolver.resolve("mixed.example", 443)
    assert [a["host"] for a in answers] == ["8.8.8.8"]


async def test_resolver_raises_when_every_answer_is_refused() -> None:
    resolver = GuardedResolver(FixedResolver("169.254.169.254", "::1"), AddressPolicy())
    with pytest.raises(BlockedAddress) as caught:
        await resolver.resolve("rebind.example", 80)
    assert isinstance(caught.value, OSError)  # so aiohttp wraps it as a DNS failure
    assert "rebind.example" in str(caught.value)
    assert "cloud metadata" in str(caught.value)
    assert "loopback" in str(caught.value)


async def test_resolver_closes_the_resolver_it_wraps() -> None:
    inner = FixedResolver("8.8.8.8")
    await GuardedResolver(inner, AddressPolicy()).close()
    assert inner.closed
