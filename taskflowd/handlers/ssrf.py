"""Outbound address policy for the `http` handler (server-side request forgery guard).

The policy is applied to the address a connection will actually use: `GuardedResolver`
filters every DNS answer (so a name that re-resolves to an internal address between
validation and connect is still refused), and literal IP hosts are checked before each
request, since aiohttp never passes them to a resolver.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Endpoints that hand out cloud credentials. They stay blocked under `allow_private`;
# only an `allowed_networks` entry that covers one explicitly opens it.
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("192.0.0.192"),  # Oracle Cloud
    }
)

# Explicit tables rather than `is_private`, whose answers changed between Python patch
# releases (and for IPv4-mapped addresses). First match names the reason.
_V4_BLOCKED: tuple[tuple[_V4, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("100.64.0.0/10"), "shared (CGNAT)"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "reserved"),
    (_V4("192.88.99.0/24"), "reserved"),
    (_V4("198.18.0.0/15"), "reserved"),
    (_V4("198.51.100.0/24"), "reserved"),
    (_V4("203.0.113.0/24"), "reserved"),
    (_V4("240.0.0.0/4"), "reserved"),  # includes the broadcast address
)

# Only 2000::/3 is global unicast; everything outside it is refused with these names
# (IPv4-mapped and NAT64 addresses are judged by the IPv4 address they carry).
_V6_NAMED: tuple[tuple[_V6, str], ...] = (
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),
    (_V6("ff00::/8"), "multicast"),
)
_V6_GLOBAL = _V6("2000::/3")
_V6_BLOCKED_GLOBAL: tuple[_V6, ...] = (
    _V6("2001::/23"),  # IETF special purpose (Teredo, benchmarking, ORCHID)
    _V6("2001:db8::/32"),  # documentation
    _V6("3fff::/20"),  # documentation
)
_NAT64 = _V6("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` is not a public destination (`"loopback"`, …), or None if it is."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return blocked_reason(inner)
    if address in _METADATA:
        return "cloud metadata"
    if isinstance(address, ipaddress.IPv4Address):
        return next((why for net, why in _V4_BLOCKED if address in net), None)
    for net, why in _V6_NAMED:
        if address in net:
            return why
    if address not in _V6_GLOBAL or any(address in net for net in _V6_BLOCKED_GLOBAL):
        return "reserved"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """`host` as an IP address (brackets and an IPv6 zone allowed), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which destination addresses the `http` handler may connect to.

    By default only public unicast addresses. `allow_private` lifts every block except
    the cloud metadata endpoints; `allowed_networks` opens exactly the CIDRs listed
    (metadata included, if listed). An IPv6 address carrying an IPv4 one is judged as
    that IPv4 address.
    """

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def from_config(cls, *, allow_private: bool, allowed_networks: Iterable[str]) -> AddressPolicy:
        """Build from config strings; a malformed CIDR raises ValueError naming it."""
        nets: list[IPNetwork] = []
        for cidr in allowed_networks:
            try:
                nets.append(ipaddress.ip_network(cidr, strict=False))
            except ValueError as exc:
                raise ValueError(f"allowed network {cidr!r} is not a CIDR: {exc}") from None
        return cls(allow_private=allow_private, allowed_networks=tuple(nets))

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to `address` is refused, or None if it is allowed."""
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            for net in self.allowed_networks:
                if candidate.version == net.version and candidate in net:
                    return None
        reason = blocked_reason(address)
        if reason is None or (self.allow_private and reason != "cloud metadata"):
            return None
        return reason


class BlockedAddress(OSError):
    """Every address a host name resolved to is refused by the policy.

    An OSError so that aiohttp wraps it like any resolution failure
    (`ClientConnectorDNSError.os_error`).
    """

    def __init__(self, host: str, reasons: Iterable[str]) -> None:
        detail = ", ".join(sorted(set(reasons))) or "no addresses"
        super().__init__(f"{host} resolves only to refused addresses ({detail})")
        self.host = host


class GuardedResolver(AbstractResolver):
    """Wraps a resolver and drops every answer the policy refuses.

    If nothing is left, `resolve` raises BlockedAddress; the connector only ever sees
    (and caches) allowed addresses.
    """

    def __init__(self, inner: AbstractResolver, policy: AddressPolicy) -> None:
        self._inner = inner
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        reasons: list[str] = []
        for answer in answers:
            address = parse_ip(answer["host"])
            reason = "unparsable address" if address is None else self._policy.refusal(address)
            if reason is None:
                allowed.append(answer)
            else:
                reasons.append(reason)
        if not allowed:
            raise BlockedAddress(host, reasons)
        return allowed

    async def close(self) -> None:
        await self._inner.close()
