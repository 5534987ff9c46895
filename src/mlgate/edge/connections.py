"""Slow and greedy clients, bounded at the connection: uvicorn's HTTP protocol with three limits added.

uvicorn bounds the idle time between requests (``timeout_keep_alive``) but not the time a client takes to send
a request: headers or a body arriving a byte a second held a connection, and its buffers, indefinitely.
``GuardedHttpTools`` (uvicorn's httptools protocol, which ``mlgate serve`` runs) adds, per connection:

- ``request_header_timeout_s``: from the connection (or the first byte of the next request on a kept-alive
  one) to the end of the headers; past it the client gets ``408`` and the connection is closed;
- ``request_body_timeout_s``: from the end of the headers to the end of the body; past it ``408`` (when no
  answer has started) and the connection is closed, so the application sees the client disconnect;
- ``max_connections_per_client``: open connections from one client address (the TCP peer; the addresses in
  ``trusted_proxies`` are exempt, since every client behind a proxy shares its address); one more is closed
  at once. Counted per server process (with ``workers``, each process counts its own).

The limits are class attributes set once per process by ``configure`` (``mlgate.server`` calls it, in each
worker process too), since uvicorn makes one protocol object per connection from the class.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlgate.settings import Settings

__all__ = ["GuardedHttpTools", "configure"]

_TIMEOUT_BODY = (b'{"error":"the request was not received in time (settings request_header_timeout_s, '
                 b'request_body_timeout_s)","code":"request_timeout","field":null}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class GuardedHttpTools(HttpToolsProtocol):
    header_timeout_s: ClassVar[float] = 10.0
    body_timeout_s: ClassVar[float] = 60.0
    max_per_client: ClassVar[int] = 0
    exempt: ClassVar[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]] = ()
    open_by_client: ClassVar[Counter[str]] = Counter()

    _deadline: asyncio.TimerHandle | None = None
    _counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        if peer is not None and self.max_per_client and not self._exempt(peer):
            if self.open_by_client[peer] >= self.max_per_client:
                self.logger.warning("connection refused: too many open connections from %s "
                                    "(setting max_connections_per_client)", peer)
                transport.abort()
                return
            self.open_by_client[peer] += 1
            self._counted = peer
        self._arm(self.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._counted is not None:
            self.open_by_client[self._counted] -= 1
            if self.open_by_client[self._counted] <= 0:
                del self.open_by_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # the first byte of a request on a kept-alive connection
            self._arm(self.header_timeout_s)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
        self._arm(self.body_timeout_s)

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.logger.info("connection closed: request not received in time from %s",
                         self.client[0] if self.client else "?")
        self.transport.close()

    def _exempt(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.exempt)


def configure(settings: Settings) -> None:
    """Set this process's limits from ``settings`` (see the module docstring)."""
    GuardedHttpTools.header_timeout_s = settings.request_header_timeout_s
    GuardedHttpTools.body_timeout_s = settings.request_body_timeout_s
    GuardedHttpTools.max_per_client = settings.max_connections_per_client
    GuardedHttpTools.exempt = tuple(ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies)
