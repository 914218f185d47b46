"""The console's API: what an attached console (``exstreamtv console``) reads over HTTP.

- ``GET /api/console/snapshot?...``: one ``EngineSnapshot`` for one refresh (the query
  fields of ``SnapshotQuery``: sessions page, sort, filter, health channel), from the same
  ``LocalControl`` the embedded console uses: one request per refresh, never one per panel.
- ``GET /api/console/stream``: Server-Sent Events with the engine's events (``event: ev``)
  and the server's log lines (``event: log``). Each message's id is ``<event id>:<log seq>``;
  a console that reconnects with ``Last-Event-ID`` (or ``?since=``) gets what it missed.
- ``POST /api/channels/{n}/error-screen/preview``: the error-screen frame rendered by the
  server (raw RGB, size in ``X-Width``/``X-Height``).

Commands (restart, slate, kick) are the existing control endpoints.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import Any

from ..engine.control import SnapshotQuery
from ..engine.local_control import LocalControl
from ..engine.observe.log_ring import log_ring

HEARTBEAT = 15.0
POLL = 0.25


def parse_since(raw: str) -> tuple[int, int]:
    """``"<event id>:<log seq>"`` (or a bare event id) -> (event id, log seq); bad input -> (0, 0)."""
    ev, _, lg = (raw or "").partition(":")
    try:
        return max(0, int(ev or 0)), max(0, int(lg or 0))
    except ValueError:
        return 0, 0


def snapshot_query(params: Any) -> SnapshotQuery:
    """A ``SnapshotQuery`` from query parameters (unknown or bad values keep their defaults)."""
    q = SnapshotQuery(events_since=1 << 62)  # events come over the stream
    for f in dataclasses.fields(SnapshotQuery):
        raw = params.get(f.name)
        if raw is None:
            continue
        try:
            if f.name in ("sessions_sort", "sessions_filter"):
                value: Any = str(raw)[:200]
            elif f.name == "sessions_reverse":
                value = raw in ("1", "true", "yes")
            elif f.name == "health_channel":
                value = int(raw) if raw != "" else None
            else:
                value = max(0, min(int(raw), 100_000))
        except ValueError:
            continue
        setattr(q, f.name, value)
    q.sessions_limit = min(q.sessions_limit, 500)
    q.library_problems = min(q.library_problems, 500)
    return q


def snapshot_json(control: LocalControl, params: Any, token_required: bool) -> bytes:
    body = dataclasses.asdict(control.snapshot(snapshot_query(params)))
    body["access"] = {"token_required": token_required}  # so a tokenless console knows it is read-only
    return json.dumps(body, default=str).encode()


async def event_stream(control: LocalControl, scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The SSE endpoint as a plain ASGI handler (a long-lived response, like a viewer's)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    query = dict(p.split("=", 1) for p in scope.get("query_string", b"").decode("latin-1").split("&") if "=" in p)
    ev_id, log_seq = parse_since(headers.get("last-event-id") or query.get("since", ""))
    ring = log_ring()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                            (b"x-accel-buffering", b"no")]})
    gone = asyncio.Event()

    async def watch() -> None:
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.ensure_future(watch())
    last_sent = time.monotonic()
    try:
        await send({"type": "http.response.body", "body": b"retry: 2000\n\n", "more_body": True})
        while not gone.is_set():
            parts: list[str] = []
            for ev in control.events(ev_id, 500):
                ev_id = ev["id"]
                parts.append(f"id: {ev_id}:{log_seq}\nevent: ev\ndata: {json.dumps(ev, default=str)}\n\n")
            for seq, created, level, name, text in ring.since(log_seq):
                log_seq = seq
                if name == "exstreamtv.events":
                    continue  # already sent as an event
                line = json.dumps({"created": created, "level": level, "logger": name, "message": text})
                parts.append(f"id: {ev_id}:{log_seq}\nevent: log\ndata: {line}\n\n")
            if not parts and time.monotonic() - last_sent > HEARTBEAT:
                parts.append(": keep-alive\n\n")
            if parts:
                await send({"type": "http.response.body", "body": "".join(parts).encode(), "more_body": True})
                last_sent = time.monotonic()
            try:
                await asyncio.wait_for(gone.wait(), POLL)
            except asyncio.TimeoutError:
                pass
    except OSError:
        pass
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
