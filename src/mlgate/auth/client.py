"""The client address of a request: the TCP peer, or what a trusted reverse proxy says in X-Forwarded-For.

``X-Forwarded-For`` is read only when the peer is one of the configured trusted proxies (addresses or CIDR
networks). The list is walked from the right, skipping trusted proxies; the first address that is not a
trusted proxy is the client. Entries left of it were written by the client and are never believed, so a
client cannot pick its own address (and its own rate-limit bucket) by sending the header.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = ["ClientAddressResolver"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


class ClientAddressResolver:
    """Resolves a request's client address through ``X-Forwarded-For`` when the TCP peer is one of
    ``trusted_proxies`` (addresses or CIDR networks); with none configured the peer is the client.
    """
    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: tuple[Network, ...] = tuple(ipaddress.ip_network(p, strict=False) for p in trusted_proxies)

    def is_trusted(self, address: str) -> bool:
        """Whether ``address`` is in one of the trusted proxy networks."""
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.trusted)

    def resolve(self, peer: str | None, forwarded_for: Sequence[str] = ()) -> str:
        """The client address, given the TCP ``peer`` address and the X-Forwarded-For header values."""
        address = peer or "unknown"
        if not self.trusted or not self.is_trusted(address):
            return address
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
        for hop in reversed(hops):
            if _ip(hop) is None:
                break  # garbage where a proxy should have written an address: stop at the last trusted hop
            address = str(_ip(hop))
            if not self.is_trusted(address):
                break
        return address
