"""``HttpControl``: the console's ``EngineControl`` over HTTP, for a console attached to a
running server (``exstreamtv console``).

- **Snapshots**: ``snapshot(query)`` never blocks the console. It returns the latest
  snapshot and asks a background task for the next one with this query: one
  ``GET /api/console/snapshot`` per console refresh, whatever the number of panels.
- **Events and log lines**: one Server-Sent Events connection (``/api/console/stream``),
  resumed with ``Last-Event-ID`` after a drop, so a reconnect loses nothing.
- **Commands**: the server's control endpoints with the token (``Authorization: Bearer``);
  without a token the console is read-only unless the server is on this machine (a
  tokenless server lets loopback clients control it).
- **Survives the server**: when requests fail the console keeps the last data, shows
  "disconnected, retrying" with the time, and reconnects by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from .engine.access import is_loopback
from .engine.control import CommandResult, ControlInfo, EngineSnapshot, SnapshotQuery
from .engine.pipeline.error_screens import PreviewImage

log = logging.getLogger("exstreamtv.attach")


class NotConnected(RuntimeError):
    pass


class RemoteLog:
    """The server's log lines as the console's events panel reads them (records + seq)."""

    def __init__(self, capacity: int = 500) -> None:
        self.records: deque[tuple[float, str, str, str]] = deque(maxlen=capacity)
        self.seq = 0


def find_local_server(data_dir: Path) -> tuple[str, str | None]:
    """URL and token of the server running on ``data_dir`` (written by it at start)."""
    state = data_dir / "server.json"
    try:
        url = json.loads(state.read_text())["url"]
    except (OSError, ValueError, KeyError, TypeError):
        raise NotConnected(f"no running server found in {data_dir} (no {state}); start one, or use "
                           "--connect URL") from None
    token_file = data_dir / "console.token"
    try:
        token = token_file.read_text().strip() or None
    except OSError:
        token = None
    return url, token


class HttpControl:
    def __init__(self, url: str, token: str | None = None, refresh_seconds: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.refresh_seconds = refresh_seconds
        host = urlsplit(self.url).hostname or ""
        self.read_only = token is None and not (is_loopback(host) or host == "localhost")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=httpx.Timeout(5.0),
                                         transport=transport)
        self._stream_client = httpx.AsyncClient(base_url=self.url, headers=headers,
                                                timeout=httpx.Timeout(5.0, read=30.0), transport=transport)
        self._query = SnapshotQuery()
        self._snap: EngineSnapshot | None = None
        self._want = asyncio.Event()
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        self.logs = RemoteLog()
        self.last_id = "0:0"
        self.connected = False
        self.disconnected_since: float | None = time.time()
        self.error = "connecting"
        self.requests = 0
        self.bytes_in = 0
        self._tasks: list[asyncio.Task] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._poll(), name="attach-snapshot"),
                       loop.create_task(self._listen(), name="attach-events")]

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()
        await self._stream_client.aclose()

    def _down(self, exc: BaseException | str) -> None:
        if self.connected or self.disconnected_since is None:
            self.disconnected_since = time.time()
        self.connected = False
        self.error = str(exc) if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}".strip(": ") or "error")

    def _up(self) -> None:
        self.connected = True
        self.disconnected_since = None
        self.error = ""

    # ------------------------------------------------------------ snapshots
    def snapshot(self, query: SnapshotQuery | None = None) -> EngineSnapshot:
        self._query = query or SnapshotQuery()
        self._want.set()
        if self._snap is None:
            raise NotConnected(self.error or "connecting")
        snap = dataclasses.replace(self._snap)
        since = self._query.events_since
        snap.events = [e for e in self.events if e["id"] > since]
        return snap

    async def _poll(self) -> None:
        while True:
            q = self._query
            params = {f.name: ("" if v is None else (int(v) if isinstance(v, bool) else v))
                      for f in dataclasses.fields(q) if f.name != "events_since" for v in [getattr(q, f.name)]}
            try:
                resp = await self._client.get("/api/console/snapshot", params=params)
                self.requests += 1
                self.bytes_in += len(resp.content)
                if resp.status_code != 200:
                    self._down(f"HTTP {resp.status_code}: {resp.text[:120]}")
                else:
                    body = resp.json()
                    self._snap = EngineSnapshot(**{k: v for k, v in body.items()
                                                   if k in EngineSnapshot.__dataclass_fields__})
                    if self.token is None and body.get("access", {}).get("token_required"):
                        self.read_only = True  # the server wants a token we do not have
                    self._up()
            except (httpx.HTTPError, ValueError, TypeError) as exc:
                self._down(exc)
            self._want.clear()
            try:  # the next refresh asks for the next snapshot (or the refresh interval passes)
                await asyncio.wait_for(self._want.wait(), self.refresh_seconds * (1 if self.connected else 2))
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------ events and log lines
    async def _listen(self) -> None:
        while True:
            try:
                headers = {"Last-Event-ID": self.last_id, "Accept": "text/event-stream"}
                async with self._stream_client.stream("GET", "/api/console/stream", headers=headers) as resp:
                    if resp.status_code != 200:
                        self._down(f"event stream: HTTP {resp.status_code}")
                    else:
                        await self._read_events(resp)
            except (httpx.HTTPError, ValueError) as exc:
                self._down(exc)
            await asyncio.sleep(1.0)

    async def _read_events(self, resp: httpx.Response) -> None:
        kind, data, ident = "", [], None
        async for line in resp.aiter_lines():
            self.bytes_in += len(line) + 1
            if line == "":
                if data:
                    self._dispatch(kind, "\n".join(data))
                if ident is not None:
                    self.last_id = ident
                kind, data, ident = "", [], None
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line.startswith("id:"):
                ident = line[3:].strip()

    def _dispatch(self, kind: str, data: str) -> None:
        try:
            obj = json.loads(data)
        except ValueError:
            return
        if kind == "ev":
            self.events.append(obj)
        elif kind == "log":
            self.logs.records.append((obj.get("created", 0.0), obj.get("level", ""), obj.get("logger", ""),
                                      obj.get("message", "")))
            self.logs.seq += 1

    # ------------------------------------------------------------ commands
    def describe(self) -> ControlInfo:
        return ControlInfo("attached", self.url, self.read_only, self.connected, self.disconnected_since,
                           self.error)

    async def _command(self, method: str, path: str, body: dict[str, Any] | None, ok_message: str) -> CommandResult:
        if self.read_only:
            return CommandResult(False, "Read-only console: start it with --token to control the server",
                                 "read_only")
        try:
            resp = await self._client.request(method, path, json=body if body is not None else {})
        except httpx.HTTPError as exc:
            return CommandResult(False, f"Server unreachable: {exc}", "unreachable")
        try:
            payload = resp.json()
        except ValueError:
            payload = {}
        if resp.status_code in (200, 202):
            return CommandResult(True, ok_message)
        reason = payload.get("reason") or payload.get("error") or f"HTTP {resp.status_code}"
        retry = payload.get("retry_after_seconds")
        detail = f", retry in {retry:.0f}s" if isinstance(retry, (int, float)) else ""
        extra = payload.get("detail")
        text = f"{reason}{detail}" + (f" ({extra})" if isinstance(extra, str) and extra else "")
        return CommandResult(False, text, str(reason), retry if isinstance(retry, (int, float)) else None)

    async def restart(self, channel_id: int) -> CommandResult:
        r = await self._command("POST", f"/api/channels/{channel_id}/restart", {},
                                f"Restart of channel {channel_id} accepted")
        if not r.ok and r.reason not in ("read_only", "unreachable"):
            r.message = f"Restart of channel {channel_id} refused: {r.message}"
        return r

    async def show_error_screen(self, channel_id: int, seconds: float, params: dict[str, Any]) -> CommandResult:
        return await self._command("POST", f"/api/channels/{channel_id}/error-screen", {"seconds": seconds, **params},
                                   f"Error screen on air on channel {channel_id} for {seconds:g}s")

    async def upcoming(self, channel_id: int, hours: float = 24.0) -> dict[str, Any]:
        resp = await self._client.get(f"/api/channels/{channel_id}/playout", params={"hours": int(hours)})
        if resp.status_code != 200:
            raise RuntimeError(f"playout of channel {channel_id}: HTTP {resp.status_code}")
        return resp.json()

    async def reload(self) -> CommandResult:
        return await self._command("POST", "/api/reload", {}, "Reloaded")

    async def scan_library(self, name: str) -> CommandResult:
        return await self._command("POST", f"/api/libraries/{name}/scan", {}, f"Scan of library {name} started")

    async def kick(self, session_id: str) -> CommandResult:
        return await self._command("DELETE", f"/api/ai/sessions/{session_id}", None,
                                   f"Session {session_id} disconnected")

    async def preview(self, channel_id: int, params: dict[str, Any], width: int, height: int) -> PreviewImage:
        if self.read_only:
            raise RuntimeError("read-only console: start it with --token to render previews")
        resp = await self._client.post(f"/api/channels/{channel_id}/error-screen/preview",
                                       json={"width": width, "height": height, "params": params},
                                       timeout=httpx.Timeout(40.0))
        if resp.status_code != 200:
            raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return PreviewImage(int(resp.headers["x-width"]), int(resp.headers["x-height"]), resp.content)
