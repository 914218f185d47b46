"""uvicorn's h11 protocol with a request-header deadline (slowloris protection).

uvicorn closes idle keep-alive connections but has no limit on how long a client may
take to send its request headers, so a client that sends one byte every few seconds
keeps a connection forever. Here every connection must complete its request line and
headers within ``header_timeout`` seconds of connecting (and of its previous response
finishing), or it is dropped. Together with ``limit_concurrency`` (most open
connections) and ``h11_max_incomplete_event_size`` (header size) a flood of slow
clients cannot exhaust the server.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("exstreamtv.http")


def guarded_protocol(header_timeout: float) -> type[H11Protocol]:
    class GuardedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(header_timeout, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                log.debug("dropping %s: no complete request within %.0fs", self.client, header_timeout)
                self.transport.abort()

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

    return GuardedH11Protocol
