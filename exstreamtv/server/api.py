"""The JSON API (``shared/API.md``, and the README's table as built), the web page, ``/healthz``
and ``/metrics``. Module-level handlers; each reaches the engine through the control
(``common.control``); the engine decides, these map its answers to status codes."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..engine.library.artwork import ArtworkMissing
from .common import WEB_DIR, ApiError, channel_number, control, int_query, json_body, json_safe
from .console_api import snapshot_json
from .metrics import render

ERROR_SCREEN_TEXT = ("title", "subtitle", "visual_mode", "audio_mode", "background_color", "text_color")


async def healthz(request: Request) -> Response:
    body = control(request).healthz()
    guard = request.app.state.guard
    if guard is not None:
        body["connections"] = guard.snapshot()
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    return Response(render(request.app.state.metrics), media_type="text/plain; version=0.0.4; charset=utf-8")


async def index(request: Request) -> Response:
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def overview(request: Request) -> Response:
    return JSONResponse(json_safe(control(request).overview()))


async def reload(request: Request) -> Response:
    await json_body(request)
    result = await control(request).reload_config()
    return JSONResponse(result, status_code=200 if result["ok"] else 400)


async def cache(request: Request) -> Response:
    return JSONResponse(json_safe(control(request).cache()))


async def playout(request: Request) -> Response:
    n = channel_number(request)
    hours = int_query(request, "hours", 24, 1, 24 * 14)
    return JSONResponse(json_safe(control(request).playout(n, float(hours or 24))))


async def libraries(request: Request) -> Response:
    return JSONResponse(json_safe({"libraries": control(request).libraries()}))


def library_name(request: Request) -> str:
    name = request.path_params["name"]
    names = control(request).library_names()
    if name not in names:
        raise ApiError(404, f"Unknown library {name!r}", {"libraries": names})
    return name


async def library(request: Request) -> Response:
    return JSONResponse(json_safe(control(request).library(library_name(request))))


async def library_problems(request: Request) -> Response:
    return JSONResponse(control(request).library_problems(library_name(request)))


async def library_scan(request: Request) -> Response:
    await json_body(request)
    result = await control(request).scan_library(library_name(request))
    return JSONResponse({"ok": result.ok, "message": result.message, "reason": result.reason},
                        status_code=202 if result.ok else 409)


async def artwork(request: Request) -> Response:
    try:
        data = await control(request).artwork(request.path_params["key"])
    except ArtworkMissing as exc:
        raise ApiError(404, "No such artwork", str(exc)) from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


async def channels(request: Request) -> Response:
    return JSONResponse(control(request).channels())


async def channel_detail(request: Request) -> Response:
    return JSONResponse(control(request).channel(channel_number(request)))


async def restart(request: Request) -> Response:
    decision = control(request).request_restart(channel_number(request), source="api")
    if decision.accepted:
        return JSONResponse(decision.to_dict(), status_code=202)
    status = 409 if decision.reason and decision.reason.value == "circuit_open" else 429
    return JSONResponse(decision.to_dict(), status_code=status,
                        headers={"Retry-After": str(max(1, round(decision.retry_after_seconds)))})


async def health(request: Request) -> Response:
    n = channel_number(request)
    limit = int_query(request, "history", 300, lo=0, hi=10_000)
    return JSONResponse(control(request).health(n, limit or 0))


async def error_screen(request: Request) -> Response:
    n = channel_number(request)
    body = await json_body(request)
    allowed = {"seconds", *ERROR_SCREEN_TEXT}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(400, f"Unknown field(s): {', '.join(unknown)}", {"allowed": sorted(allowed)})
    seconds = body.get("seconds", 30)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 1 <= seconds <= 3600:
        raise ApiError(400, "Field 'seconds' must be a number from 1 to 3600", seconds)
    params: dict[str, Any] = {}
    for key in ERROR_SCREEN_TEXT:
        if key in body and body[key] is not None:
            if not isinstance(body[key], str):
                raise ApiError(400, f"Field {key!r} must be a string", body[key])
            if len(body[key]) > 1000:
                raise ApiError(400, f"Field {key!r} is longer than 1000 characters", len(body[key]))
            params[key] = body[key]
    result = await control(request).show_error_screen(n, float(seconds), params)
    if not result.ok:
        raise ApiError(400, result.message)
    return JSONResponse({"on_air": True, "channel_id": n, "seconds": seconds}, status_code=202)


async def preview(request: Request) -> Response:
    n = channel_number(request)
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
        img = await control(request).preview(n, params, width, height)
    except ValueError as exc:
        raise ApiError(400, f"Invalid error screen: {exc}") from None
    except RuntimeError as exc:
        raise ApiError(500, "Preview failed", str(exc)[:300]) from None
    return Response(img.rgb, media_type="application/octet-stream",
                    headers={"X-Width": str(img.width), "X-Height": str(img.height)})


async def sessions(request: Request) -> Response:
    return JSONResponse(control(request).sessions_summary(int_query(request, "channel_id")))


async def kick(request: Request) -> Response:
    sid = request.path_params["session_id"]
    if not (await control(request).kick(sid)).ok:
        raise ApiError(404, "Session not found", {"session_id": sid})
    return JSONResponse({"disconnected": True, "session_id": sid})


async def pool(request: Request) -> Response:
    return JSONResponse(control(request).pool())


async def breakers(request: Request) -> Response:
    return JSONResponse(control(request).breakers())


async def events(request: Request) -> Response:
    since = int_query(request, "since", 0) or 0
    limit = int_query(request, "limit", 500, lo=1, hi=5000) or 500
    evs = control(request).events(since, limit)
    return JSONResponse({"events": evs, "last_id": evs[-1]["id"] if evs else since})


async def console_snapshot(request: Request) -> Response:
    c = control(request)
    return Response(snapshot_json(c, request.query_params, bool(c.config.server.api_token)),
                    media_type="application/json")


ROUTES = [
    Route("/healthz", healthz),
    Route("/metrics", metrics),
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
]
