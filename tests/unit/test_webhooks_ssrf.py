"""The SSRF validator over hostile URLs of every kind it must refuse, and what it allows."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from flowbus.consumer.webhooks.ssrf import SSRFPolicy, address_block_reason, check_url
from flowbus.errors import BlockedURLError, ConfigurationError, URLResolutionError

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


def resolver_for(table: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    """A fake DNS: names in ``table`` resolve to its addresses, others fail the test."""
    calls: list[str] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        if host not in table:
            raise URLResolutionError(host, "not in the test's DNS table")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


DNS = resolver_for(
    {
        "public.example": [PUBLIC_V4, PUBLIC_V6],
        "rebind.example": ["127.0.0.1"],
        "metadata.example": ["169.254.169.254"],
        "mixed.example": [PUBLIC_V4, "10.1.2.3"],
        "mixed6.example": [PUBLIC_V6, "fd12::1"],
        "mapped.example": ["::ffff:10.0.0.1"],
        "internal.corp.example": ["10.20.30.40"],
        "127.0.0.1.nip.example": ["127.0.0.1"],
    }
)

#: (url, a fragment of the expected reason)
HOSTILE = [
    # schemes
    ("file:///etc/passwd", "scheme 'file'"),
    ("gopher://public.example/", "scheme 'gopher'"),
    ("ftp://public.example/", "scheme 'ftp'"),
    ("dict://public.example:11211/", "scheme 'dict'"),
    ("javascript:alert(1)", "scheme 'javascript'"),
    ("//public.example/no-scheme", "scheme '(none)'"),
    ("", "empty"),
    # ports
    ("http://public.example:8080/", "port 8080 is not allowed"),
    ("https://public.example:22/", "port 22 is not allowed"),
    ("http://public.example:0/", "port 0 is not allowed"),
    # loopback
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254/", "loopback"),
    ("http://localhost/", "names the local machine"),
    ("http://LOCALHOST./", "names the local machine"),
    ("http://api.localhost/", "names the local machine"),
    ("http://rebind.example/", "resolves to 127.0.0.1: loopback"),
    ("http://127.0.0.1.nip.example/", "loopback"),
    # private (RFC 1918)
    ("http://10.0.0.1/", "private (RFC 1918)"),
    ("http://172.16.0.1/", "private (RFC 1918)"),
    ("http://172.31.255.255/", "private (RFC 1918)"),
    ("http://192.168.1.1/", "private (RFC 1918)"),
    # CGNAT
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.254/", "carrier-grade NAT"),
    # link-local, cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://metadata.example/computeMetadata/v1/", "link-local"),
    # multicast, reserved, broadcast, unspecified, other special ranges
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://0.1.2.3/", "this network"),
    ("http://192.0.2.10/", "documentation"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://192.0.0.8/", "IETF protocol assignments"),
    # IPv6
    ("http://[::1]/", "loopback (IPv6)"),
    ("http://[::]/", "unspecified (IPv6)"),
    ("http://[fc00::1]/", "unique local address"),
    ("http://[fd12:3456::1]/", "unique local address"),
    ("http://[fe80::1]/", "link-local (IPv6)"),
    ("http://[fec0::1]/", "site-local"),
    ("http://[ff02::1]/", "multicast (IPv6)"),
    ("http://[2001:db8::1]/", "documentation (IPv6)"),
    ("http://[100::1]/", "discard-only"),
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "Teredo"),
    ("http://[fe80::1%25eth0]/", "zone"),
    ("http://mixed6.example/", "resolves to fd12::1"),
    # IPv4-mapped / IPv4-compatible / embedding IPv6
    ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    ("http://[::ffff:7f00:1]/", "IPv4-mapped"),
    ("http://[::ffff:169.254.169.254]/", "IPv4-mapped"),
    ("http://[::ffff:93.184.216.34]/", "IPv4-mapped"),
    ("http://mapped.example/", "IPv4-mapped"),
    ("http://[::127.0.0.1]/", "IPv4-compatible"),
    ("http://[::10.0.0.1]/", "IPv4-compatible"),
    ("http://[64:ff9b::7f00:1]/", "embedding 127.0.0.1"),
    ("http://[64:ff9b:1::1]/", "local-use NAT64"),
    ("http://[2002:a9fe:a9fe::]/", "embedding 169.254.169.254"),
    # IPv4 in decimal, octal, hex and short forms
    ("http://2130706433/", "non-canonical"),
    ("http://017700000001/", "non-canonical"),
    ("http://0x7f000001/", "non-canonical"),
    ("http://0x7f.0x0.0x0.0x1/", "non-canonical"),
    ("http://0177.0.0.1/", "non-canonical"),
    ("http://0177.0000.0000.0001/", "non-canonical"),
    ("http://127.1/", "non-canonical"),
    ("http://127.0.1/", "non-canonical"),
    ("http://10.1/", "non-canonical"),
    ("http://0/", "non-canonical"),
    ("http://3232235777/", "non-canonical"),  # 192.168.1.1
    ("http://0xa9fea9fe/", "non-canonical"),  # 169.254.169.254
    ("http://127.0.0.1./", "non-canonical"),
    ("http://012.0.0.1/", "non-canonical"),
    # DNS: any bad address among several refuses the URL
    ("http://mixed.example/", "resolves to 10.1.2.3"),
    # URL tricks
    ("http://user:pass@public.example/", "credentials"),
    ("http://public.example@127.0.0.1/", "credentials"),
    ("http://public.example\\@127.0.0.1/", "backslashes"),
    ("http://public.example /", "whitespace"),
    ("http://public.example\t/", "whitespace"),
    ("http://public.example\r\nHost: evil/", "control characters"),
    ("http:///path-only", "no host"),
    ("http://[::1/", "not a valid URL"),
]


@pytest.mark.parametrize(("url", "reason"), HOSTILE, ids=[case[0] or "<empty>" for case in HOSTILE])
def test_hostile_url_is_blocked_with_reason(url: str, reason: str) -> None:
    with pytest.raises(BlockedURLError) as caught:
        check_url(url, SSRFPolicy(), DNS)
    assert reason in caught.value.reason
    assert str(caught.value).startswith("blocked: ")


ALLOWED = [
    ("https://public.example/hooks?x=1", [PUBLIC_V4, PUBLIC_V6]),
    ("http://public.example/", [PUBLIC_V4, PUBLIC_V6]),
    ("HTTPS://PUBLIC.EXAMPLE:443/", [PUBLIC_V4, PUBLIC_V6]),
    ("https://public.example:80/", [PUBLIC_V4, PUBLIC_V6]),
    (f"http://{PUBLIC_V4}/", [PUBLIC_V4]),
    (f"https://[{PUBLIC_V6}]/", [PUBLIC_V6]),
    ("http://[64:ff9b::5db8:d822]/", ["64:ff9b::5db8:d822"]),  # NAT64 of a public address
]


@pytest.mark.parametrize(("url", "addresses"), ALLOWED, ids=[case[0] for case in ALLOWED])
def test_public_url_is_allowed_with_its_checked_addresses(url: str, addresses: list[str]) -> None:
    checked = check_url(url, SSRFPolicy(), DNS)
    assert [str(a) for a in checked.addresses] == addresses


def test_checked_url_keeps_host_and_port_for_host_header_and_sni() -> None:
    checked = check_url("https://Public.Example/path?q=1", SSRFPolicy(), DNS)
    assert (checked.host, checked.port, checked.url.scheme) == ("public.example", 443, "https")
    assert checked.origin == "https://public.example:443"


def test_ip_literals_are_not_resolved() -> None:
    resolver = resolver_for({})
    check_url(f"http://{PUBLIC_V4}/", SSRFPolicy(), resolver)
    assert resolver.calls == []  # type: ignore[attr-defined]


def test_unresolvable_host_is_a_resolution_error() -> None:
    with pytest.raises(URLResolutionError) as caught:
        check_url("https://nowhere.example/", SSRFPolicy(), DNS)
    assert caught.value.host == "nowhere.example"


def test_resolver_returning_nothing_is_a_resolution_error() -> None:
    with pytest.raises(URLResolutionError):
        check_url("https://empty.example/", SSRFPolicy(), resolver_for({"empty.example": []}))


# -- allowlist -------------------------------------------------------------------------


def test_allowlisted_network_lifts_the_address_checks_only() -> None:
    policy = SSRFPolicy.from_allowlist(["127.0.0.0/8", "10.20.0.0/16"], ports=[80, 8080])
    assert check_url("http://127.0.0.1:8080/", policy, DNS).port == 8080
    assert str(check_url("http://internal.corp.example/", policy, DNS).addresses[0]) == (
        "10.20.30.40"
    )
    with pytest.raises(BlockedURLError, match="port 9000"):
        check_url("http://127.0.0.1:9000/", policy, DNS)
    with pytest.raises(BlockedURLError, match="private"):
        check_url("http://10.21.0.1/", policy, DNS)
    with pytest.raises(BlockedURLError, match="non-canonical"):
        check_url("http://2130706433/", policy, DNS)
    with pytest.raises(BlockedURLError, match="scheme"):
        check_url("ftp://127.0.0.1/", policy, DNS)


def test_allowlisted_network_does_not_cover_ipv4_mapped_ipv6() -> None:
    policy = SSRFPolicy.from_allowlist(["127.0.0.0/8"])
    with pytest.raises(BlockedURLError, match="IPv4-mapped"):
        check_url("http://[::ffff:127.0.0.1]/", policy, DNS)


def test_allowlisted_host_names_trust_their_addresses() -> None:
    policy = SSRFPolicy.from_allowlist(["internal.corp.example", "*.svc.example"])
    assert check_url("http://internal.corp.example/", policy, DNS).host == ("internal.corp.example")
    dns = resolver_for({"hooks.svc.example": ["10.9.9.9"], "svc.example": ["10.9.9.9"]})
    assert check_url("https://hooks.svc.example/", policy, dns).port == 443
    with pytest.raises(BlockedURLError):
        check_url("https://svc.example/", policy, dns)  # "*." means subdomains only
    with pytest.raises(BlockedURLError, match="loopback"):
        check_url("http://rebind.example/", policy, DNS)


def test_localhost_name_can_be_allowlisted_explicitly() -> None:
    policy = SSRFPolicy.from_allowlist(["localhost"], ports=[8000])
    dns = resolver_for({"localhost": ["127.0.0.1"]})
    assert check_url("http://localhost:8000/", policy, dns).host == "localhost"


@pytest.mark.parametrize("entry", ["", "not a host", "10.0.0.0/33", "2130706433", "-bad.example"])
def test_malformed_allowlist_entries_are_configuration_errors(entry: str) -> None:
    with pytest.raises(ConfigurationError):
        SSRFPolicy.from_allowlist([entry])


@pytest.mark.parametrize("ports", [[], [0], [70000]])
def test_malformed_port_lists_are_configuration_errors(ports: list[int]) -> None:
    with pytest.raises(ConfigurationError):
        SSRFPolicy.from_allowlist([], ports=ports)


def test_policy_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowbus.settings import FlowbusSettings

    monkeypatch.setenv("FLOWBUS_WEBHOOKS_SSRF_ALLOWLIST", '["127.0.0.1/32", "hooks.internal"]')
    monkeypatch.setenv("FLOWBUS_WEBHOOKS_ALLOWED_PORTS", "[443, 8443]")
    policy = SSRFPolicy.from_settings(FlowbusSettings())
    assert policy.allowed_ports == frozenset({443, 8443})
    assert policy.allowed_hosts == ("hooks.internal",)
    assert policy.allowed_networks == (ipaddress.ip_network("127.0.0.1/32"),)


def test_every_public_address_passes_and_reason_is_none() -> None:
    for text in (PUBLIC_V4, PUBLIC_V6, "8.8.8.8", "1.1.1.1", "2001:4860:4860::8888"):
        assert address_block_reason(ipaddress.ip_address(text)) is None
