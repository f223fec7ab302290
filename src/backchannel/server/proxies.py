"""Who the client is behind a load balancer: X-Forwarded-For, believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """`"10.0.0.0/8, 127.0.0.1"` as networks; `ValueError` names a bad entry."""
    networks = []
    for part in spec.split(","):
        entry = part.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def _trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The client's IP: the peer, unless the peer is a trusted proxy.

    Then X-Forwarded-For is read from the right (the entries our own proxies appended), skipping
    trusted hops; the first untrusted entry is the client. Entries further left were written by
    the client itself and prove nothing.
    """
    address = (peer or "").strip() or "unknown"
    if not trusted or not forwarded_for or not _trusted(address, trusted):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        address = _strip_port(hop)
        if not _trusted(address, trusted):
            return address
    return address


def _strip_port(hop: str) -> str:
    if hop.startswith("["):  # "[2001:db8::1]:443"
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:  # "203.0.113.7:5555"
        return hop.split(":", 1)[0]
    return hop
