"""IP allowlist entries as text: a declared entry's canonical form, the comparison key of a live
entry (which may be no address at all), their display order, and which are plain IPv4."""

from __future__ import annotations

import ipaddress


def normalize_entry(value: str) -> str:
    """A declared entry in canonical text: an IPv4 or IPv6 address, or a CIDR block of either."""
    text = value.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        if "/" in text and "host bits set" in str(exc):
            raise ValueError(f"{text} has host bits set: write the block as {ipaddress.ip_network(text, strict=False)}") from None
        raise ValueError("not an IPv4 or IPv6 address or CIDR block (e.g. 203.0.113.7, 2001:db8::7, 203.0.113.0/24)") from None


def canonical(text: str) -> str:
    """The comparison key of a live entry: canonical address or CIDR text when it is one (so
    ``2001:DB8::1`` matches a declared ``2001:db8::1``); anything else the vendor holds, as given."""
    t = text.strip()
    try:
        return str(ipaddress.ip_interface(t)) if "/" in t else str(ipaddress.ip_address(t))
    except ValueError:
        return t


def sort_key(text: str) -> tuple[int, int, int, int, str]:
    """Addresses in numeric order (IPv4, then IPv6; a block after its first address), then any
    entry that is no address, by text."""
    try:
        iface = ipaddress.ip_interface(text.strip())
    except ValueError:
        return (1, 0, 0, 0, text)
    return (0, iface.version, int(iface.ip), iface.network.prefixlen, text)


def is_plain_ipv4(text: str) -> bool:
    return "/" not in text and ":" not in text
