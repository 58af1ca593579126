"""SSRF protection for webhook targets: which URLs a delivery may reach.

:func:`check_url` is the one validator used by the delivery engine and by
``flowbus webhooks check-url``. It parses the URL with the same parser the HTTP client
uses (httpx), refuses anything but ``http``/``https`` on an allowed port, refuses
ambiguous host spellings (IPv4 in decimal, octal, hex or short form, IPv6 zone ids,
``localhost`` names, credentials in the URL), resolves the host **once** and checks every
address it resolves to. The result, :class:`CheckedURL`, carries the checked addresses;
the HTTP client connects only to those (see :mod:`.http`), so a DNS answer that changes
between the check and the connection (DNS rebinding) never reaches the network.

An explicit allowlist (:class:`SSRFPolicy`) lets internal deployments and tests reach
chosen networks (CIDRs) or host names; it lifts the address checks only, never the scheme,
port or syntax rules.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from flowbus.errors import BlockedURLError, ConfigurationError, URLResolutionError

if TYPE_CHECKING:
    from flowbus.settings import FlowbusSettings

__all__ = [
    "DEFAULT_ALLOWED_PORTS",
    "CheckedURL",
    "IPAddress",
    "Resolver",
    "SSRFPolicy",
    "address_block_reason",
    "check_url",
    "system_resolver",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: ``resolver(host, port)`` -> the addresses ``host`` resolves to, as strings.
Resolver = Callable[[str, int], Sequence[str]]

DEFAULT_ALLOWED_PORTS = frozenset({80, 443})
ALLOWED_SCHEMES = frozenset({"http", "https"})

_N = ipaddress.ip_network

#: Refused IPv4 ranges, most specific first; anything else not globally routable is
#: refused by the catch-all in :func:`address_block_reason`.
_IPV4_BLOCKS: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "'this network' (0.0.0.0/8)"),
        ("127.0.0.0/8", "loopback"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("100.64.0.0/10", "carrier-grade NAT shared space (RFC 6598)"),
        ("169.254.0.0/16", "link-local (cloud metadata endpoints live here)"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_IPV6_BLOCKS: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("::/128", "unspecified (IPv6)"),
        ("::1/128", "loopback (IPv6)"),
        ("64:ff9b:1::/48", "local-use NAT64 (IPv6)"),
        ("100::/64", "discard-only (IPv6)"),
        ("2001::/32", "Teredo tunnelling (IPv6, embeds an IPv4 address)"),
        ("2001:db8::/32", "documentation (IPv6)"),
        ("3fff::/20", "documentation (IPv6)"),
        ("fc00::/7", "unique local address (IPv6 ULA)"),
        ("fe80::/10", "link-local (IPv6)"),
        ("fec0::/10", "site-local (IPv6, deprecated)"),
        ("ff00::/8", "multicast (IPv6)"),
    )
)
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")

#: 1 to 4 dot-separated numbers, each decimal, octal (leading 0) or hex (0x): the forms
#: ``inet_aton`` accepts. A host matching this that is not a canonical dotted quad is refused.
_LOOSE_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.I)
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
_HOST_ENTRY = re.compile(
    r"^(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$"
)


def address_block_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached, or ``None`` when it is a public address.

    IPv4-mapped and IPv4-compatible IPv6 addresses are always refused; NAT64 and 6to4
    addresses are refused when the IPv4 address they embed would be.
    """
    if isinstance(address, ipaddress.IPv4Address):
        for v4_network, reason in _IPV4_BLOCKS:
            if address in v4_network:
                return reason
    else:
        if address.scope_id:
            return "IPv6 address with a zone id"
        for v6_network, reason in _IPV6_BLOCKS[:2]:
            if address in v6_network:
                return reason
        if address in _IPV4_MAPPED:
            return f"IPv4-mapped IPv6 address (embeds {address.ipv4_mapped})"
        if address in _IPV4_COMPATIBLE:
            compatible = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            return f"IPv4-compatible IPv6 address (embeds {compatible})"
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_block_reason(embedded)
            return None if inner is None else f"IPv6 address embedding {embedded}, {inner}"
        for v6_network, reason in _IPV6_BLOCKS[2:]:
            if address in v6_network:
                return reason
    if not address.is_global:
        return "reserved (not globally routable)"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host`` (TCP), in its order, deduplicated."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise URLResolutionError(host, str(exc)) from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    return addresses


@dataclass(frozen=True, slots=True)
class SSRFPolicy:
    """What webhook targets may reach beyond the public internet.

    ``allowed_networks``: addresses inside these networks pass the address checks.
    ``allowed_hosts``: host names (exact, or ``*.example.internal`` for any subdomain)
    whose addresses are trusted whatever they are. ``allowed_ports``: the only ports
    any URL may use.
    """

    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    allowed_ports: frozenset[int] = field(default=DEFAULT_ALLOWED_PORTS)

    @classmethod
    def from_allowlist(
        cls, entries: Iterable[str] = (), ports: Iterable[int] = DEFAULT_ALLOWED_PORTS
    ) -> SSRFPolicy:
        """Build a policy from allowlist entries (CIDRs, IP addresses or host names).

        Raises :class:`~flowbus.errors.ConfigurationError` naming a malformed entry or port.
        """
        networks: list[IPNetwork] = []
        hosts: list[str] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                raise ConfigurationError("webhooks SSRF allowlist: empty entry")
            try:
                networks.append(_N(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if not _HOST_ENTRY.match(entry.rstrip(".")) or _LOOSE_IPV4.match(entry):
                raise ConfigurationError(
                    f"webhooks SSRF allowlist entry {raw!r} is neither a CIDR, an IP address "
                    "nor a host name (optionally '*.' + a domain)"
                )
            hosts.append(entry.rstrip("."))
        port_set = frozenset(ports)
        for port in port_set:
            if not 1 <= port <= 65535:
                raise ConfigurationError(f"webhooks allowed port {port} is not in 1..65535")
        if not port_set:
            raise ConfigurationError("webhooks allowed ports: at least one port is needed")
        return cls(tuple(networks), tuple(hosts), port_set)

    @classmethod
    def from_settings(cls, settings: FlowbusSettings | None = None) -> SSRFPolicy:
        """The policy configured by ``FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST`` / ``..._ALLOWED_PORTS``."""
        if settings is None:
            from flowbus.settings import get_settings

            settings = get_settings()
        return cls.from_allowlist(settings.webhooks_ssrf_allowlist, settings.webhooks_allowed_ports)

    def host_is_allowed(self, host: str) -> bool:
        """Whether ``host`` (lower-case ASCII) is an allowlisted host name."""
        host = host.rstrip(".")
        for entry in self.allowed_hosts:
            if entry.startswith("*."):
                if host.endswith(entry[1:]):
                    return True
            elif host == entry:
                return True
        return False

    def address_is_allowed(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in an allowlisted network."""
        return any(
            address.version == network.version and address in network
            for network in self.allowed_networks
        )


@dataclass(frozen=True, slots=True)
class CheckedURL:
    """A URL that passed :func:`check_url`, with the addresses it may be connected to."""

    url: httpx.URL
    host: str
    """The host as sent on the wire (lower-case ASCII, IDNA-encoded; no brackets for IPv6)."""
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def origin(self) -> str:
        """``scheme://host:port``: what logs may show (never the path or query)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.url.scheme}://{host}:{self.port}"


def check_url(
    url: str, policy: SSRFPolicy | None = None, resolver: Resolver | None = None
) -> CheckedURL:
    """Validate ``url`` against ``policy``; resolve its host once and check every address.

    Raises :class:`~flowbus.errors.BlockedURLError` with the reason when the URL is
    refused, and :class:`~flowbus.errors.URLResolutionError` when the host does not resolve.
    """
    policy = policy or SSRFPolicy()
    parsed, host, port = _check_syntax(url, policy)
    literal = _ip_literal(host)
    host_trusted = literal is None and policy.host_is_allowed(host)
    if literal is not None:
        addresses: tuple[IPAddress, ...] = (literal,)
    else:
        resolved = (resolver or system_resolver)(host, port)
        if not resolved:
            raise URLResolutionError(host, "no addresses")
        try:
            addresses = tuple(ipaddress.ip_address(a) for a in resolved)
        except ValueError as exc:
            raise URLResolutionError(host, f"resolver returned a non-address: {exc}") from exc
    if not host_trusted:
        for address in addresses:
            if policy.address_is_allowed(address):
                continue
            reason = address_block_reason(address)
            if reason is not None:
                subject = "address" if literal is not None else f"host '{host}' resolves to"
                raise BlockedURLError(f"{subject} {address}: {reason}")
    return CheckedURL(parsed, host, port, addresses)


def _check_syntax(url: str, policy: SSRFPolicy) -> tuple[httpx.URL, str, int]:
    if not isinstance(url, str) or not url:
        raise BlockedURLError("the URL is empty")
    if _UNSAFE_CHARS.search(url):
        raise BlockedURLError("the URL contains whitespace, control characters or backslashes")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        _refuse_loose_ipv4(_fallback_host(url))
        raise BlockedURLError(f"not a valid URL ({exc})") from exc
    scheme = parsed.scheme
    if scheme not in ALLOWED_SCHEMES:
        shown = scheme or "(none)"
        raise BlockedURLError(f"scheme '{shown}' is not allowed (only http and https)")
    if parsed.userinfo:
        raise BlockedURLError("credentials (user:password@) in the URL are not allowed")
    try:
        host = parsed.raw_host.decode("ascii").lower()
    except UnicodeDecodeError as exc:  # pragma: no cover - httpx always IDNA-encodes
        raise BlockedURLError("the host is not ASCII after IDNA encoding") from exc
    if not host:
        raise BlockedURLError("the URL has no host")
    if "%" in host:
        raise BlockedURLError("IPv6 zone identifiers are not allowed")
    port = parsed.port if parsed.port is not None else (443 if scheme == "https" else 80)
    if port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports))
        raise BlockedURLError(f"port {port} is not allowed (allowed: {allowed})")
    _refuse_loose_ipv4(host)
    bare = host.rstrip(".")
    if (bare == "localhost" or bare.endswith(".localhost")) and not policy.host_is_allowed(bare):
        raise BlockedURLError(f"'{bare}' names the local machine")
    return parsed, host, port


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _refuse_loose_ipv4(host: str | None) -> None:
    if host and _ip_literal(host) is None and _LOOSE_IPV4.match(host):
        raise BlockedURLError(
            f"host '{host}' is an IPv4 address in a non-canonical form "
            "(decimal, octal, hex or short); write it as a dotted quad"
        )


def _fallback_host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None
