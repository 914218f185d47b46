"""Optional SSDP responder (``hdhr.ssdp_enabled``): answers M-SEARCH so Plex finds the tuner itself."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from ...engine.hdhr import is_msearch_for_us, ssdp_response

log = logging.getLogger("exstreamtv.ssdp")
GROUP, PORT = "239.255.255.250", 1900


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, device_id: str, base: str) -> None:
        self.device_id, self.base = device_id, base
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if self.transport is not None and is_msearch_for_us(data):
            self.transport.sendto(ssdp_response(self.device_id, self.base), addr)


async def start_ssdp(device_id: str, base: str) -> asyncio.DatagramTransport | None:
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", PORT))
        mreq = struct.pack("4sl", socket.inet_aton(GROUP), socket.INADDR_ANY)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Responder(device_id, base), sock=sock)
        log.info("SSDP: answering M-SEARCH on %s:%d as %s", GROUP, PORT, base)
        return transport
    except OSError as exc:
        log.warning("SSDP disabled: %s", exc)
        return None
