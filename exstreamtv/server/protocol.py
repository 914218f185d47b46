"""uvicorn's h11 protocol with connection admission: floods of idle sockets cost real clients nothing.

uvicorn's ``limit_concurrency`` counts open connections, including ones that never sent a
byte, and answers 503 to everyone once it is reached: 4000 idle sockets lock out health
checks, the API and new viewers. Here connections are admitted by ``ConnectionGuard``:

- **Header deadline** (slowloris): a connection must complete its request line and headers
  within ``header_timeout`` seconds of connecting (and of its previous response), or it
  is dropped.
- **Per address**: at most ``per_address`` open connections from one client address; more
  are closed at once.
- **Under pressure**: when open connections reach ``max_connections`` (never more than the
  file descriptors allow, keeping a reserve for FFmpeg pipes, the store and the guide), a
  new connection first evicts the oldest connection that is *waiting for a request*
  (idle keep-alive or header-less); only when every connection carries a request is the
  newcomer closed. Viewers and requests in progress are never evicted.
- Closing is an abort with ``SO_LINGER`` 0, so the kernel frees the socket's buffers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections import OrderedDict

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("exstreamtv.http")


def abort_now(transport: asyncio.BaseTransport | None) -> None:
    """Drop a connection at once with RST: its unsent data and kernel buffers are freed now."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    try:
        transport.abort()
    except Exception:  # pragma: no cover - already closed
        pass


class ConnectionGuard:
    """Counts open connections (all, per address, waiting for a request) for one server."""

    def __init__(self, max_connections: int, per_address: int, header_timeout: float) -> None:
        self.max_connections = max_connections
        self.per_address = per_address
        self.header_timeout = header_timeout
        self.open = 0
        self.by_address: dict[str, int] = {}
        self.waiting: OrderedDict[int, "H11Protocol"] = OrderedDict()  # no request in progress, oldest first
        self.evicted = 0
        self.refused_address = 0
        self.refused_full = 0
        self._last_log = 0.0

    def _log(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10.0:  # once per interval, never a log flood
            self._last_log = now
            log.warning(msg, *args)

    def admit(self, proto: "H11Protocol", addr: str) -> bool:
        if self.by_address.get(addr, 0) >= self.per_address:
            victim = next((p for p in self.waiting.values() if getattr(p, "_addr", None) == addr), None)
            if victim is None:
                self.refused_address += 1
                self._log("refusing connections from %s: %d open, all busy (server.max_connections_per_address)",
                          addr, self.per_address)
                return False
            self._evict(victim, f"{addr} has {self.per_address} connections open")
        if self.open >= self.max_connections:
            if not self.waiting:
                self.refused_full += 1
                self._log("at %d connections, all busy: refusing new ones", self.open)
                return False
            self._evict(next(iter(self.waiting.values())), f"at {self.open} connections")
        self.open += 1
        self.by_address[addr] = self.by_address.get(addr, 0) + 1
        return True

    def _evict(self, victim: "H11Protocol", why: str) -> None:
        """Close a connection that waits for a request (its slot goes to the newcomer)."""
        self.waiting.pop(id(victim), None)
        self.evicted += 1
        self._log("%s: closing the oldest connections that wait for a request", why)
        release = getattr(victim, "_release", None)
        if release is not None:
            release()  # counted free now; asyncio reports connection_lost later
        abort_now(victim.transport)


    def release(self, addr: str) -> None:
        self.open -= 1
        n = self.by_address.get(addr, 1) - 1
        if n <= 0:
            self.by_address.pop(addr, None)
        else:
            self.by_address[addr] = n

    def snapshot(self) -> dict[str, int]:
        return {"open": self.open, "waiting_for_request": len(self.waiting), "max": self.max_connections,
                "per_address": self.per_address, "evicted": self.evicted,
                "refused_per_address": self.refused_address, "refused_full": self.refused_full}


def guarded_protocol(guard: ConnectionGuard) -> type[H11Protocol]:
    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _admitted = False
        _counted = False
        _addr = ""

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(guard.header_timeout, self._header_deadline)
            guard.waiting[id(self)] = self
            guard.waiting.move_to_end(id(self))

        def _header_deadline(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                log.debug("dropping %s: no complete request within %.0fs", self.client, guard.header_timeout)
                abort_now(self.transport)

        def connection_made(self, transport) -> None:  # type: ignore[override]
            peer = transport.get_extra_info("peername")
            self._addr = str(peer[0]) if isinstance(peer, tuple) and peer else "unix"
            if not guard.admit(self, self._addr):
                abort_now(transport)
                return
            self._admitted = self._counted = True
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:
                guard.waiting.pop(id(self), None)  # a request in progress: never evicted
                self.cycle.scope.setdefault("exstreamtv.transport", self.transport)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def _release(self) -> None:
            if self._counted:
                self._counted = False
                guard.waiting.pop(id(self), None)
                guard.release(self._addr)

        def connection_lost(self, exc) -> None:
            if not self._admitted:
                return
            self._admitted = False
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._release()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._admitted:
                super().data_received(data)

        def eof_received(self) -> None:
            if self._admitted:
                super().eof_received()

    return GuardedH11Protocol
