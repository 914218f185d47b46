"""HDHomeRun network discovery (UDP 65001, libhdhomerun's protocol): Plex, Channels DVR and
``hdhomerun_config discover`` find the tuner without being told its address.

The reply's base URL is the address the request arrived on (so a client on the LAN gets a
LAN address and one on this machine gets loopback), unless ``server.base_url`` is set.
Malformed packets are counted and logged once per interval, never answered.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Callable

from ...engine.hdhr import DISCOVER_PORT, MAX_CONTROL_PAYLOAD, DiscoveryPacketError, control_reply, discover_reply

log = logging.getLogger("exstreamtv.discovery")


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, device_id: str, base_for: Callable[[str], str], tuners: int) -> None:
        self.device_id, self.base_for, self.tuners = device_id, base_for, tuners
        self.transport: asyncio.DatagramTransport | None = None
        self.answered = 0
        self.malformed = 0
        self._last_log = 0.0

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if self.transport is None:
            return
        local = self.transport.get_extra_info("sockname")
        local_ip = local[0] if local and local[0] not in ("0.0.0.0", "") else _route_ip(addr[0])
        try:
            reply = discover_reply(data, self.device_id, self.base_for(local_ip), self.tuners)
        except DiscoveryPacketError as exc:
            self.malformed += 1
            now = time.monotonic()
            if now - self._last_log > 10:
                self._last_log = now
                log.warning("ignoring a malformed discovery packet from %s: %s", addr[0], exc)
            return
        if reply is not None:
            self.transport.sendto(reply, addr)
            self.answered += 1


def _route_ip(peer: str) -> str:
    """The local address packets to ``peer`` leave from (what the peer can reach us at)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((peer, DISCOVER_PORT))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


async def start_discovery(host: str, port: int, device_id: str, base_for: Callable[[str], str], tuners: int,
                          ) -> tuple[asyncio.DatagramTransport, _Responder] | None:
    """Listen on UDP ``port`` (65001) on ``host``; a busy port is a warning, never fatal."""
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("" if host in ("0.0.0.0", "::", "") else host, port))
        transport, proto = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Responder(device_id, base_for, tuners), sock=sock)
        log.info("HDHomeRun discovery: answering on UDP %s:%d as device %s", host or "*", port, device_id)
        return transport, proto  # type: ignore[return-value]
    except OSError as exc:
        log.warning("HDHomeRun discovery off: cannot listen on UDP port %d: %s", port, exc)
        return None


async def start_control(host: str, port: int, lookup: Callable[[str], str | None]) -> asyncio.Server | None:
    """The tuner's TCP control port (65001): ``hdhomerun_config <id> get /sys/model`` and the like.
    A malformed or oversized packet closes that connection; nothing else is affected."""
    last_log = [0.0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(4), 30)
                length = int.from_bytes(head[2:4], "big")
                if length > MAX_CONTROL_PAYLOAD:
                    raise DiscoveryPacketError(f"payload of {length} bytes is over {MAX_CONTROL_PAYLOAD}")
                body = await asyncio.wait_for(reader.readexactly(length + 4), 10)
                writer.write(control_reply(head + body, lookup))
                await asyncio.wait_for(writer.drain(), 10)
        except DiscoveryPacketError as exc:
            now = time.monotonic()
            if now - last_log[0] > 10:
                last_log[0] = now
                log.warning("closing an HDHomeRun control connection from %s: %s", peer, exc)
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()

    try:
        server = await asyncio.start_server(handle, "" if host in ("0.0.0.0", "::", "") else host, port,
                                            reuse_address=True)
    except OSError as exc:
        log.warning("HDHomeRun control port off: cannot listen on TCP port %d: %s", port, exc)
        return None
    return server
