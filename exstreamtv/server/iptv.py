"""What IPTV clients read: the M3U playlist, the XMLTV guide, channel logos, and the HDHomeRun
HTTP side (discover, lineup, status, device description). Module-level handlers; each reaches
the engine through the control (``common.control``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine import hdhr
from .common import ApiError, base_url, channel_number, control


def m3u_escape(value: str) -> str:
    return value.replace('"', "'").replace("\n", " ").replace("\r", " ")


async def playlist(request: Request) -> Response:
    base = base_url(request)
    lines = [f'#EXTM3U url-tvg="{base}/iptv/xmltv.xml" x-tvg-url="{base}/iptv/xmltv.xml"']
    for ch in control(request).listing():
        if not ch["available"]:
            continue  # nothing playable: a client would only get 503
        n, name = ch["number"], m3u_escape(ch["name"])
        lines.append(f'#EXTINF:-1 tvg-id="{n}" tvg-chno="{n}" tvg-name="{name}" '
                     f'tvg-logo="{base}/iptv/logos/{n}.png" '
                     f'group-title="{m3u_escape(ch["group"] or "EXStreamTV")}",{name}')
        lines.append(f"{base}/stream/channels/{n}.ts")
    return Response("\n".join(lines) + "\n", media_type="audio/x-mpegurl")


async def xmltv(request: Request) -> Response:
    body = await control(request).guide_xml(base_url(request))  # cached per minute, built off the loop
    return Response(body, media_type="application/xml; charset=utf-8", headers={"Cache-Control": "max-age=60"})


async def logo(request: Request) -> Response:
    n = channel_number(request)
    try:
        data, kind = await control(request).logo(n)
    except (OSError, RuntimeError) as exc:
        raise ApiError(500, f"Logo unavailable for channel {n}", str(exc)) from None
    return Response(data, media_type=kind, headers={"Cache-Control": "max-age=3600"})


async def discover(request: Request) -> Response:
    ident = control(request).hdhr_identity()
    return JSONResponse(hdhr.discover(ident["device_id"], base_url(request), ident["name"], ident["tuners"]))


async def lineup(request: Request) -> Response:
    base = base_url(request)
    return JSONResponse([{"GuideNumber": str(ch["number"]), "GuideName": ch["name"],
                          "URL": f"{base}/hdhr/stream/channels/{ch['number']}.ts"}
                         for ch in control(request).listing()])


async def lineup_status(request: Request) -> Response:
    return JSONResponse(hdhr.lineup_status())


async def lineup_post(request: Request) -> Response:
    return Response(b"", status_code=200)  # "scan": our lineup is always current


async def status_json(request: Request) -> Response:
    return JSONResponse(hdhr.status_json(control(request).tuners()))


async def device_xml(request: Request) -> Response:
    ident = control(request).hdhr_identity()
    return Response(hdhr.device_xml(ident["device_id"], base_url(request), ident["name"]),
                    media_type="application/xml")


ROUTES = [
    Route("/iptv/channels.m3u", playlist),
    Route("/iptv/xmltv.xml", xmltv),
    Route("/iptv/logos/{n}.png", logo),
    Route("/discover.json", discover),
    Route("/lineup.json", lineup),
    Route("/lineup_status.json", lineup_status),
    Route("/lineup.post", lineup_post, methods=["POST", "GET"]),
    Route("/device.xml", device_xml),
    Route("/status.json", status_json),
]
