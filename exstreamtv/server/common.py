"""What every HTTP handler shares: JSON errors (``ApiError``), bounded JSON bodies and integer
query parameters with a clear message, the base URL clients reach us at, the channel a path
names. Handlers reach the engine through ``control(request)``: the one door, the console's too."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..engine import access
from ..engine.engine import UnknownChannel
from ..engine.local_control import LocalControl

MAX_BODY = 64 * 1024
BODY_TIMEOUT = 10.0
WEB_DIR = Path(__file__).resolve().parent.parent / "web"  # the page, its script and the vendored hls.js


class ApiError(Exception):
    def __init__(self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def control(request: Request) -> LocalControl:
    """The engine's door, set on the app by ``build_starlette``."""
    return request.app.state.control


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


def base_url(request: Request) -> str:
    """Where clients reach us: ``server.base_url``, else the request's Host (checked by the access
    policy; anything that is not a plain host[:port] falls back to the address it came in on)."""
    server_cfg = control(request).config.server
    if server_cfg.base_url:
        return server_cfg.base_url.rstrip("/")
    host = request.headers.get("host", "")
    if access.host_name(host) is None:
        server = request.scope.get("server") or ("127.0.0.1", server_cfg.port)
        host = f"[{server[0]}]:{server[1]}" if ":" in str(server[0]) else f"{server[0]}:{server[1]}"
    return f"{request.url.scheme}://{host}"


def channel_number(request: Request) -> int:
    raw = request.path_params.get("n", "")
    c = control(request)
    try:
        return c.channel_number(raw)
    except UnknownChannel:
        raise ApiError(404, f"Unknown channel {raw!r}", {"channels": c.channel_numbers()}) from None


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
