"""Live HLS over HTTP: ``/hls/channels/{n}/live.m3u8`` and its segments.

Responses are made for shared caches: a segment never changes once listed (immutable, kept
a day), a shared cache may reuse the playlist for one target duration (``s-maxage``) while a
browser asks again each time (its player decides when to reload). The engine decides who
may watch (the same admission as a stream) and keeps the session; this maps its answers
to HTTP.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine.admission import AdmissionRefused
from ..engine.stream.hls_viewers import HlsUnavailable
from .common import control
from .stream import RETRY_AFTER, STATUS

CORS = {"Access-Control-Allow-Origin": "*"}  # any web player may use the streams (they are public as .ts too)


def _refused(exc: AdmissionRefused) -> Response:
    headers = dict(exc.extra, **CORS, **{"Cache-Control": "no-store"})
    if exc.retry_after_seconds is not None and exc.reason in RETRY_AFTER:
        headers["Retry-After"] = str(max(1, round(exc.retry_after_seconds)))
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=STATUS[exc.reason], headers=headers)


def _unavailable(exc: HlsUnavailable) -> Response:
    return JSONResponse({"error": exc.error, "detail": exc.detail}, status_code=exc.status,
                        headers={**CORS, "Cache-Control": "no-store"})


def _client(request: Request) -> tuple[str, str]:
    client = request.client
    addr = f"{client.host}:{client.port}" if client else "unknown"
    return addr, request.headers.get("user-agent", "")


async def playlist(request: Request) -> Response:
    addr, ua = _client(request)
    try:
        text, target = await control(request).hls_playlist(request.path_params["n"], addr, ua)
    except AdmissionRefused as exc:
        return _refused(exc)
    except HlsUnavailable as exc:
        return _unavailable(exc)
    return Response(text, media_type="application/vnd.apple.mpegurl",
                    headers={**CORS, "Cache-Control": f"public, max-age=0, s-maxage={target}"})


async def segment(request: Request) -> Response:
    addr, ua = _client(request)
    try:
        seg = await control(request).hls_segment(request.path_params["n"], request.path_params["seq"], addr, ua)
    except AdmissionRefused as exc:
        return _refused(exc)
    except HlsUnavailable as exc:
        return _unavailable(exc)
    headers: dict[str, Any] = {**CORS, "Cache-Control": "public, max-age=86400, immutable"}
    return Response(seg.data, media_type="video/mp2t", headers=headers)


ROUTES = [Route("/hls/channels/{n}/live.m3u8", playlist, methods=["GET", "HEAD"]),
          Route("/hls/channels/{n}/{seq:int}.ts", segment, methods=["GET", "HEAD"])]
