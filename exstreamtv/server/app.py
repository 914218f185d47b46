"""HTTP adapter: the contract of ``shared/API.md`` on top of the Engine.

``build_app`` returns one ASGI callable: viewer streams go straight to ``StreamEndpoint``;
everything else is a small Starlette app with JSON errors everywhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..engine import hdhr
from ..engine.pipeline.channel import ChannelState
from ..engine.engine import Engine, UnknownChannel
from ..engine import access
from ..engine.control import LocalControl
from ..engine.library.artwork import ArtworkMissing
from .console_api import event_stream, snapshot_json
from .metrics import metrics_registry, render
from .protocol import ConnectionGuard
from .hls import hls_routes
from .stream import STREAM_PATH, TUNER_PATH, StreamEndpoint

log = logging.getLogger("exstreamtv.http")

MAX_BODY = 64 * 1024
BODY_TIMEOUT = 10.0
MAX_HEADER_BYTES = 16 * 1024


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the page, its script and the vendored hls.js


def json_safe(value: Any) -> Any:
    """Details echo client input: make sure it can be written as strict JSON (no NaN/inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def error_response(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": json_safe(detail)}, status_code=status, headers=headers)


def base_url(request: Request, engine: Engine) -> str:
    """Where clients reach us: ``server.base_url``, else the request's Host (checked by the access
    policy; anything that is not a plain host[:port] falls back to the address it came in on)."""
    configured = engine.config.server.base_url
    if configured:
        return configured.rstrip("/")
    host = request.headers.get("host", "")
    if access.host_name(host) is None:
        server = request.scope.get("server") or ("127.0.0.1", engine.config.server.port)
        host = f"[{server[0]}]:{server[1]}" if ":" in str(server[0]) else f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def channel_number(request: Request, engine: Engine) -> int:
    raw = request.path_params.get("n", "")
    try:
        return engine.channel(raw).number
    except UnknownChannel:
        raise ApiError(404, f"Unknown channel {raw!r}", {"channels": sorted(engine.channels)}) from None


async def json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise ApiError(413, "Request body too large", {"limit_bytes": MAX_BODY})
    body = b""
    try:
        async with asyncio.timeout(BODY_TIMEOUT):  # a body sent a byte at a time does not hold a request open
            async for part in request.stream():
                body += part
                if len(body) > MAX_BODY:
                    raise ApiError(413, "Request body too large", {"limit_bytes": MAX_BODY})
    except TimeoutError:
        raise ApiError(408, "Request body too slow", {"limit_seconds": BODY_TIMEOUT}) from None
    if not body.strip():
        return {}
    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not allowed")

    try:
        data = json.loads(body, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, "Malformed JSON body", str(exc)[:200]) from None
    if not isinstance(data, dict):
        raise ApiError(400, "JSON body must be an object", type(data).__name__)
    return data


def int_query(request: Request, name: str, default: int | None = None, lo: int = 0, hi: int = 2**31) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"Query parameter {name!r} must be an integer", raw) from None
    if not lo <= value <= hi:
        raise ApiError(400, f"Query parameter {name!r} must be between {lo} and {hi}", value)
    return value


def m3u_escape(value: str) -> str:
    return value.replace('"', "'").replace("\n", " ").replace("\r", " ")


def build_starlette(engine: Engine, guard: ConnectionGuard | None = None,
                    control: LocalControl | None = None) -> Starlette:
    control = control or LocalControl(engine)  # snapshots and commands: the same door as the console's
    async def healthz(request: Request) -> Response:
        body = {"status": "ok", "event_loop": engine.loop_lag.snapshot()}
        if guard is not None:
            body["connections"] = guard.snapshot()
        return JSONResponse(body)

    async def playlist(request: Request) -> Response:
        base = base_url(request, engine)
        lines = [f'#EXTM3U url-tvg="{base}/iptv/xmltv.xml" x-tvg-url="{base}/iptv/xmltv.xml"']
        for ch in sorted(engine.channels.values(), key=lambda c: c.number):
            if ch.state is ChannelState.UNAVAILABLE:
                continue  # nothing playable: a client would only get 503
            lines.append(f'#EXTINF:-1 tvg-id="{ch.number}" tvg-chno="{ch.number}" '
                         f'tvg-name="{m3u_escape(ch.name)}" tvg-logo="{base}/iptv/logos/{ch.number}.png" '
                         f'group-title="{m3u_escape(ch.cfg.group or "EXStreamTV")}",{m3u_escape(ch.name)}')
            lines.append(f"{base}/stream/channels/{ch.number}.ts")
        return Response("\n".join(lines) + "\n", media_type="audio/x-mpegurl")

    async def xmltv(request: Request) -> Response:
        body = await engine.guide_xml(base_url(request, engine))  # cached per minute, built off the loop
        return Response(body, media_type="application/xml; charset=utf-8", headers={"Cache-Control": "max-age=60"})

    async def logo(request: Request) -> Response:
        n = channel_number(request, engine)
        try:
            data, kind = await engine.logo(n)
        except (OSError, RuntimeError) as exc:
            raise ApiError(500, f"Logo unavailable for channel {n}", str(exc)) from None
        return Response(data, media_type=kind, headers={"Cache-Control": "max-age=3600"})

    def hdhr_name() -> str:
        return engine.config.hdhr.friendly_name

    async def discover(request: Request) -> Response:
        base = base_url(request, engine)
        return JSONResponse(hdhr.discover(engine.hdhr_device_id, base, hdhr_name(), engine.config.hdhr.tuner_count))

    async def lineup(request: Request) -> Response:
        base = base_url(request, engine)
        return JSONResponse([{"GuideNumber": str(ch.number), "GuideName": ch.name,
                              "URL": f"{base}/hdhr/stream/channels/{ch.number}.ts"}
                             for ch in sorted(engine.channels.values(), key=lambda c: c.number)])

    async def lineup_status(request: Request) -> Response:
        return JSONResponse(hdhr.lineup_status())

    async def lineup_post(request: Request) -> Response:
        return Response(b"", status_code=200)  # "scan": our lineup is always current

    async def status_json(request: Request) -> Response:
        return JSONResponse(hdhr.status_json(engine.tuners()))

    async def device_xml(request: Request) -> Response:
        return Response(hdhr.device_xml(engine.hdhr_device_id, base_url(request, engine), hdhr_name()),
                        media_type="application/xml")

    async def overview(request: Request) -> Response:
        return JSONResponse(json_safe(control.overview()))

    async def index(request: Request) -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def reload(request: Request) -> Response:
        await json_body(request)
        result = await control.reload_config()
        return JSONResponse(result, status_code=200 if result["ok"] else 400)

    async def cache(request: Request) -> Response:
        return JSONResponse(json_safe({"cache": engine.cache.snapshot(), "capacity": engine.capacity.snapshot()}))

    async def playout(request: Request) -> Response:
        n = channel_number(request, engine)
        hours = int_query(request, "hours", 24, 1, 24 * 14)
        return JSONResponse(json_safe(control.playout(n, float(hours))))

    async def libraries(request: Request) -> Response:
        return JSONResponse(json_safe({"libraries": control.libraries()}))

    def library_name(request: Request) -> str:
        name = request.path_params["name"]
        if name not in engine.libraries.libraries:
            raise ApiError(404, f"Unknown library {name!r}", {"libraries": sorted(engine.libraries.libraries)})
        return name

    async def library(request: Request) -> Response:
        return JSONResponse(json_safe(control.library(library_name(request))))

    async def library_problems(request: Request) -> Response:
        return JSONResponse(control.library_problems(library_name(request)))

    async def library_scan(request: Request) -> Response:
        await json_body(request)
        result = await control.scan_library(library_name(request))
        return JSONResponse({"ok": result.ok, "message": result.message, "reason": result.reason},
                            status_code=202 if result.ok else 409)

    async def artwork(request: Request) -> Response:
        try:
            data = await engine.artwork.get(request.path_params["key"])
        except ArtworkMissing as exc:
            raise ApiError(404, "No such artwork", str(exc)) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})

    async def channels(request: Request) -> Response:
        return JSONResponse({"channels": engine.channels_snapshot(), "scan": engine.scan.snapshot()})

    async def channel_detail(request: Request) -> Response:
        n = channel_number(request, engine)
        return JSONResponse(next(c for c in engine.channels_snapshot() if c["number"] == n))

    async def restart(request: Request) -> Response:
        n = channel_number(request, engine)
        decision = engine.request_channel_restart(n, source="api")
        if decision.accepted:
            return JSONResponse(decision.to_dict(), status_code=202)
        status = 409 if decision.reason and decision.reason.value == "circuit_open" else 429
        return JSONResponse(decision.to_dict(), status_code=status,
                            headers={"Retry-After": str(max(1, round(decision.retry_after_seconds)))})

    async def health(request: Request) -> Response:
        n = channel_number(request, engine)
        limit = int_query(request, "history", 300, lo=0, hi=10_000)
        report = engine.health_report(n)
        report["history"] = report["history"][-limit:] if limit else []
        return JSONResponse(report)

    async def error_screen(request: Request) -> Response:
        n = channel_number(request, engine)
        body = await json_body(request)
        allowed = {"seconds", "title", "subtitle", "visual_mode", "audio_mode", "background_color", "text_color"}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(400, f"Unknown field(s): {', '.join(unknown)}", {"allowed": sorted(allowed)})
        seconds = body.get("seconds", 30)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 1 <= seconds <= 3600:
            raise ApiError(400, "Field 'seconds' must be a number from 1 to 3600", seconds)
        params: dict[str, Any] = {}
        for key in ("title", "subtitle", "visual_mode", "audio_mode", "background_color", "text_color"):
            if key in body and body[key] is not None:
                if not isinstance(body[key], str):
                    raise ApiError(400, f"Field {key!r} must be a string", body[key])
                if len(body[key]) > 1000:
                    raise ApiError(400, f"Field {key!r} is longer than 1000 characters", len(body[key]))
                params[key] = body[key]
        try:
            engine.show_error_screen(n, float(seconds), params)
        except ValueError as exc:
            raise ApiError(400, f"Invalid error screen: {exc}") from None
        return JSONResponse({"on_air": True, "channel_id": n, "seconds": seconds}, status_code=202)

    async def sessions(request: Request) -> Response:
        ch = int_query(request, "channel_id")
        return JSONResponse(control.sessions_summary(ch))

    async def kick(request: Request) -> Response:
        sid = request.path_params["session_id"]
        if not (await control.kick(sid)).ok:
            raise ApiError(404, "Session not found", {"session_id": sid})
        return JSONResponse({"disconnected": True, "session_id": sid})

    async def pool(request: Request) -> Response:
        return JSONResponse(control.pool())

    async def breakers(request: Request) -> Response:
        return JSONResponse(control.breakers())

    async def events(request: Request) -> Response:
        since = int_query(request, "since", 0)
        limit = int_query(request, "limit", 500, lo=1, hi=5000)
        evs = engine.events.since(since or 0, limit or 500)
        return JSONResponse({"events": [e.to_dict() for e in evs],
                             "last_id": evs[-1].id if evs else since})

    registry = metrics_registry(engine)

    async def console_snapshot(request: Request) -> Response:
        body = snapshot_json(control, request.query_params, bool(engine.config.server.api_token))
        return Response(body, media_type="application/json")

    async def preview(request: Request) -> Response:
        n = channel_number(request, engine)
        body = await json_body(request)
        try:
            width = max(16, min(int(body.get("width", 96)), 640))
            height = max(16, min(int(body.get("height", 54)), 360))
        except (TypeError, ValueError):
            raise ApiError(400, "width and height must be integers") from None
        params = body.get("params") or {}
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            raise ApiError(400, "params must be an object of strings")
        try:
            img = await control.preview(n, params, width, height)
        except ValueError as exc:
            raise ApiError(400, f"Invalid error screen: {exc}") from None
        except RuntimeError as exc:
            raise ApiError(500, "Preview failed", str(exc)[:300]) from None
        return Response(img.rgb, media_type="application/octet-stream",
                        headers={"X-Width": str(img.width), "X-Height": str(img.height)})

    async def metrics(request: Request) -> Response:
        return Response(render(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

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

    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics),
        Route("/iptv/channels.m3u", playlist),
        Route("/iptv/xmltv.xml", xmltv),
        Route("/iptv/logos/{n}.png", logo),
        Route("/discover.json", discover),
        Route("/lineup.json", lineup),
        Route("/lineup_status.json", lineup_status),
        Route("/lineup.post", lineup_post, methods=["POST", "GET"]),
        Route("/device.xml", device_xml),
        Route("/status.json", status_json),
        Route("/", index),
        Mount("/web", app=StaticFiles(directory=WEB_DIR), name="web"),
        Route("/api/overview", overview),
        Route("/api/channels/{n}/playout", playout),
        Route("/api/reload", reload, methods=["POST"]),
        Route("/api/cache", cache),
        Route("/api/libraries", libraries),
        Route("/api/libraries/{name}", library),
        Route("/api/libraries/{name}/problems", library_problems),
        Route("/api/libraries/{name}/scan", library_scan, methods=["POST"]),
        Route("/artwork/{key:str}.jpg", artwork),
        Route("/api/channels", channels),
        Route("/api/channels/{n}", channel_detail),
        Route("/api/channels/{n}/restart", restart, methods=["POST"]),
        Route("/api/channels/{n}/error-screen", error_screen, methods=["POST"]),
        Route("/api/ai/channels/{n}/health", health),
        Route("/api/ai/sessions", sessions),
        Route("/api/ai/sessions/{session_id}", kick, methods=["DELETE"]),
        Route("/api/pool", pool),
        Route("/api/breakers", breakers),
        Route("/api/events", events),
        Route("/api/console/snapshot", console_snapshot),
        Route("/api/channels/{n}/error-screen/preview", preview, methods=["POST"]),
        *hls_routes(engine),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: not_found, ApiError: api_error,
                                                         Exception: server_error})


class ExStreamApp:
    """The ASGI app: streams to ``StreamEndpoint``, everything else to Starlette; control endpoints guarded."""

    def __init__(self, engine: Engine, guard: ConnectionGuard | None = None) -> None:
        self.engine = engine
        self.stream = StreamEndpoint(engine)
        self.control = LocalControl(engine)  # the console API's view of the engine (urls set once serving)
        self.api = build_starlette(engine, guard, self.control)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            refusal = self._refusal(scope)
            if refusal is not None:
                from .stream import send_json

                headers = [(b"www-authenticate", b"Bearer")] if refusal.status == 401 else []
                await send_json(send, refusal.status, {"error": refusal.error, "detail": refusal.detail}, headers)
                return
            if scope.get("path") == "/api/console/stream" and scope["method"] == "GET":
                await event_stream(self.engine, scope, receive, send)
                return
            path = scope.get("path", "")
            m = STREAM_PATH.match(path)
            if m:
                await self.stream(scope, receive, send, m.group(2), hdhr=bool(m.group(1)))
                return
            m = TUNER_PATH.match(path)
            if m:
                if m.group(2) is not None and int(m.group(2)) >= self.engine.config.hdhr.tuner_count:
                    from .stream import send_json

                    await send_json(send, 404, {"error": "No such tuner",
                                                "detail": f"tuners are 0-{self.engine.config.hdhr.tuner_count - 1}"})
                    return
                await self.stream(scope, receive, send, m.group(3), hdhr=True)
                return
        await self.api(scope, receive, send)

    def _refusal(self, scope: dict[str, Any]) -> access.Refusal | None:
        cfg = self.engine.config.server
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


