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

It also writes each response in one system call: uvicorn writes a response's head and its body separately, and
the transport sends each at once (two ``send`` calls, two TCP segments, and two wake-ups of the client, per
answer). ``_CoalescedWrites`` holds what is written during one turn of the event loop and sends it together
at the end of the turn (``writelines``: one ``writev``); close flushes first. Workload T, same-run A/B:
benchmarks/RESULTS.md.

The limits are class attributes set once per process by ``configure`` (``mlgate.server`` calls it, in each
worker process too), since uvicorn makes one protocol object per connection from the class.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlgate.settings import Settings

__all__ = ["GuardedHttpTools", "configure"]

_TIMEOUT_BODY = (b'{"error":"the request was not received in time (settings request_header_timeout_s, '
                 b'request_body_timeout_s)","code":"request_timeout","field":null}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                     b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class _CoalescedWrites:
    """A transport whose writes within one event-loop turn go out together (see the module docstring);
    everything else is the wrapped transport's."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes | bytearray | memoryview] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self._flush)
        else:
            self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


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
        self.transport = _CoalescedWrites(transport, self.loop)  # type: ignore[assignment]
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
