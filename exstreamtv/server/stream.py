"""The viewer endpoint ``GET /stream/channels/{n}.ts`` as a plain ASGI app.

It sits in front of Starlette (no middleware per chunk, and it keeps uvicorn's own
``send`` so a stalled or kicked viewer's socket can be aborted instead of waiting for a
flush that never comes). Each request is a StreamSession; bytes come from the channel's
broadcaster, pass the session's StreamThrottler, and are counted on the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from typing import Any

from ..engine import admission
from ..engine.admission import Refused
from ..engine.local_control import LocalControl
from .protocol import abort_now

log = logging.getLogger("exstreamtv.stream")

STREAM_PATH = re.compile(r"^(/hdhr)?/stream/channels/([^/]+)\.ts$")
# what HDHomeRun clients request from a real tuner: any free tuner, or tuner i
TUNER_PATH = re.compile(r"^/(auto|tuner(\d{1,3}))/v([^/]+)$")

# the engine decides who may tune in; this maps its refusals to HTTP
STATUS = {Refused.UNKNOWN_CHANNEL: 404, Refused.UNAVAILABLE: 503, Refused.BREAKER_OPEN: 503, Refused.TUNERS_BUSY: 503,
          Refused.CHANNEL_FULL: 503, Refused.ADDRESS_FULL: 429, Refused.START_FAILED: 503}
RETRY_AFTER = {Refused.CHANNEL_FULL, Refused.ADDRESS_FULL}


async def send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


def limit_send_buffer(send: Any, size: int) -> None:
    """Bound the kernel send buffer of a viewer's socket (uvicorn's transport behind ``send``)."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None and size > 0:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
        except OSError:
            pass


def abort_transport(send: Any) -> None:
    """Drop the TCP connection now with RST, so the kernel frees the unsent data at once
    (uvicorn's send is a bound method of the cycle that owns the transport)."""
    abort_now(getattr(getattr(send, "__self__", None), "transport", None))


def client_addr(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


def header(scope: dict[str, Any], name: bytes) -> str:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return ""


class StreamEndpoint:
    def __init__(self, control: LocalControl) -> None:
        self.control = control

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any, number: str, hdhr: bool = False) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await send_json(send, 405, {"error": "Method not allowed", "detail": "use GET"},
                            [(b"allow", b"GET, HEAD")])
            return
        try:
            if scope["method"] == "HEAD":
                self.control.tune_check(number, hdhr)
            else:
                admitted = await self.control.tune(number, client_addr(scope), header(scope, b"user-agent"), hdhr)
        except admission.AdmissionRefused as refusal:
            headers = [(k.encode(), v.encode()) for k, v in refusal.extra.items()]
            if refusal.retry_after_seconds is not None and refusal.reason in RETRY_AFTER:
                headers.append((b"retry-after", str(max(1, round(refusal.retry_after_seconds))).encode()))
            await send_json(send, STATUS[refusal.reason], {"error": refusal.error, "detail": refusal.detail}, headers)
            return
        if scope["method"] == "HEAD":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"video/mp2t"), (b"cache-control", b"no-cache")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self._pump(receive, send, admitted)

    async def _pump(self, receive: Any, send: Any, stream: admission.Admission) -> None:
        pump_task: asyncio.Task | None = None
        ended = {"reason": "client disconnected"}

        def on_end(reason: str) -> None:
            # kicked, idle timeout or shutdown: stop reading and drop the socket if a send is stuck
            ended["reason"] = reason
            abort_transport(send)
            if pump_task is not None:
                pump_task.cancel()

        stream.on_end(on_end)

        async def pump() -> None:
            limit_send_buffer(send, self.control.config.streaming.socket_send_buffer_bytes)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"video/mp2t"), (b"cache-control", b"no-cache, no-store"),
                                    (b"connection", b"close"), (b"x-session-id", stream.session_id.encode())]})
            while True:
                data, delay = await stream.next_chunk()
                if not data:
                    break
                try:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                except OSError as exc:
                    if stream.send_failed(str(exc) or type(exc).__name__):
                        return
                    continue
                stream.sent(len(data))
                if delay > 0:
                    await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def watch_disconnect() -> None:
            while True:
                msg = await receive()
                if msg["type"] == "http.disconnect":
                    return

        pump_task = asyncio.ensure_future(pump())
        watch_task = asyncio.ensure_future(watch_disconnect())
        try:
            await asyncio.wait({pump_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (pump_task, watch_task):
                t.cancel()
            await asyncio.gather(pump_task, watch_task, return_exceptions=True)
            if pump_task.done() and not pump_task.cancelled() and pump_task.exception() is not None:
                ended["reason"] = f"error: {pump_task.exception()}"
                log.warning("viewer %s stream ended with %r", stream.session_id, pump_task.exception())
            stream.close(ended["reason"])
