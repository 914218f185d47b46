"""HTTP adapter: the contract of ``shared/API.md`` on top of the Engine.

``build_app`` returns one ASGI callable: viewer streams go straight to ``StreamEndpoint``;
everything else is a small Starlette app of module-level handlers (``iptv``, ``api``, ``hls``)
with JSON errors everywhere. Every handler reaches the engine through one ``LocalControl``
(the console's door too); the access policy is the engine's (``engine/access.py``).
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..engine import access
from ..engine.engine import Engine
from ..engine.local_control import LocalControl
from . import api, hls, iptv
from .common import ApiError, error_response
from .console_api import event_stream
from .metrics import metrics_registry
from .protocol import ConnectionGuard
from .stream import STREAM_PATH, TUNER_PATH, StreamEndpoint

log = logging.getLogger("exstreamtv.http")

MAX_HEADER_BYTES = 16 * 1024


async def not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    msg = {404: "Not found", 405: "Method not allowed"}.get(status, getattr(exc, "detail", "HTTP error"))
    return error_response(status, msg, {"path": request.url.path, "method": request.method})


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers)


async def server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "Internal server error", type(exc).__name__)


def build_starlette(control: LocalControl, guard: ConnectionGuard | None, metrics: CollectorRegistry) -> Starlette:
    app = Starlette(routes=[*api.ROUTES, *iptv.ROUTES, *hls.ROUTES],
                    exception_handlers={HTTPException: not_found, ApiError: api_error, Exception: server_error})
    app.state.control = control  # handlers: common.control(request)
    app.state.guard = guard
    app.state.metrics = metrics
    return app


class ExStreamApp:
    """The ASGI app: streams to ``StreamEndpoint``, everything else to Starlette; control endpoints guarded."""

    def __init__(self, engine: Engine, guard: ConnectionGuard | None = None) -> None:
        # composition: the handlers get the control (the one door, urls set once serving); the
        # metrics collector observes the engine's counters at scrape time
        self.control = LocalControl(engine)
        self.stream = StreamEndpoint(self.control)
        self.api = build_starlette(self.control, guard, metrics_registry(engine))

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                from .stream import send_json

                headers = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
                await send_json(send, refusal.status, {"error": refusal.error, "detail": refusal.detail}, headers)
                return
            if scope.get("path") == "/api/console/stream" and scope["method"] == "GET":
                await event_stream(self.control, scope, receive, send)
                return
            path = scope.get("path", "")
            m = STREAM_PATH.match(path)
            if m:
                await self.stream(scope, receive, send, m.group(2), hdhr=bool(m.group(1)))
                return
            m = TUNER_PATH.match(path)
            if m:
                if m.group(2) is not None and int(m.group(2)) >= self.control.config.hdhr.tuner_count:
                    from .stream import send_json

                    await send_json(send, 404, {"error": "No such tuner",
                                                "detail": f"tuners are 0-{self.control.config.hdhr.tuner_count - 1}"})
                    return
                await self.stream(scope, receive, send, m.group(3), hdhr=True)
                return
        await self.api(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> access.Refusal | None:
        cfg = self.control.config.server
        raw = scope.get("headers", [])
        if sum(len(k) + len(v) + 4 for k, v in raw) > MAX_HEADER_BYTES:
            return access.Refusal(431, "Request header fields too large", f"at most {MAX_HEADER_BYTES} bytes")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        host = headers.get("host")
        if host is not None and not access.host_allowed(host, cfg.base_url, tuple(cfg.allowed_hosts)):
            return access.Refusal(421, "Unknown host", f"this server does not answer to {host[:100]!r}: use its "
                                  "address, or add the name to server.allowed_hosts")
        client = (scope.get("client") or ("", 0))[0]
        path = scope.get("path", "")
        return access.control_refusal(scope["method"], path, client, headers, cfg.api_token) or \
            access.read_refusal(path, headers, cfg.read_token, cfg.api_token)


def build_app(engine: Engine, guard: ConnectionGuard | None = None) -> ExStreamApp:
    return ExStreamApp(engine, guard)


