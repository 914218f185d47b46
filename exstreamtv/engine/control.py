"""The console's one small interface to the engine: read a snapshot, send commands.

Everything here is plain data (dicts and lists that JSON can carry): ``LocalControl`` is
the in-process implementation (the embedded console, and the HTTP server's console API);
``exstreamtv/attach.py``'s ``HttpControl`` is the same interface over HTTP, for a console
attached to a running server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .pipeline.error_screens import ErrorScreenMessage, PreviewImage


@dataclass
class CommandResult:
    ok: bool
    message: str
    reason: str | None = None
    retry_after_seconds: float | None = None


@dataclass
class SnapshotQuery:
    """What one console refresh needs: the cost of a snapshot follows the rows in view."""

    events_since: int = 0
    sessions_offset: int = 0
    sessions_limit: int = 60
    sessions_sort: str = "client"  # client, ch, state, dur, bytes, rate
    sessions_reverse: bool = False
    sessions_filter: str = ""
    health_channel: int | None = None  # the one channel whose history is sent
    history: int = 120
    library_problems: int = 0  # problems (and warnings) listed per library


@dataclass
class EngineSnapshot:
    uptime_seconds: float
    urls: list[str]
    channels: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    recent_disconnects: list[dict[str, Any]]
    pool: dict[str, Any]
    breakers: dict[str, dict[str, Any]]
    health: dict[str, dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0  # wall clock of the snapshot (progress bars are computed against it)
    sessions_total: int | None = None  # live sessions matching the query (``sessions`` is one page of them)
    sessions_offset: int = 0
    loop: dict[str, Any] = field(default_factory=dict)  # event-loop lag (LoopLagMonitor.snapshot)
    scan: dict[str, Any] = field(default_factory=dict)  # background media probe (ScanProgress.snapshot)
    libraries: list[dict[str, Any]] = field(default_factory=list)  # each library: counts, scan progress, problems


class ControlUnavailable(Exception):
    """The console could not reach an engine (start-up failed, no server found); the message says why."""


class ConsoleBackend(Protocol):
    """What the console is handed by the command line: it starts (or attaches to) an engine and
    gives the control, and stops (or detaches) at the end. The console never builds a server."""

    owns_server: bool  # False: quitting the console leaves the server running

    async def start(self) -> "EngineControl": ...

    async def stop(self, status: Any = None) -> None: ...


@dataclass
class ControlInfo:
    """How the console reaches the engine (shown in its header)."""

    mode: str = "local"  # local: the console runs the server; attached: over HTTP to a running one
    url: str = ""
    read_only: bool = False
    connected: bool = True
    disconnected_since: float | None = None  # wall clock
    error: str = ""


class EngineControl(Protocol):
    def snapshot(self, query: SnapshotQuery | None = None) -> EngineSnapshot: ...

    async def restart(self, channel_id: int) -> CommandResult: ...

    async def show_error_screen(self, channel_id: int, seconds: float, params: dict[str, Any]) -> CommandResult: ...

    async def kick(self, session_id: str) -> CommandResult: ...

    async def scan_library(self, name: str) -> CommandResult: ...

    async def upcoming(self, channel_id: int, hours: float) -> dict[str, Any]: ...

    async def reload(self) -> CommandResult: ...

    async def preview(self, channel_id: int, params: dict[str, Any], width: int, height: int) -> PreviewImage: ...

    def describe(self) -> "ControlInfo": ...


class LocalControl:
    """EngineControl for an engine in the same process."""

    def __init__(self, engine, urls: list[str] | None = None) -> None:
        self.engine = engine
        self.urls = urls or []

    def snapshot(self, query: SnapshotQuery | None = None) -> EngineSnapshot:
        q = query or SnapshotQuery()
        e = self.engine
        channels = e.channels_snapshot()
        health = {}
        for ch in channels:
            n = ch["number"]
            health[str(n)] = e.health_report(n, q.history if n == q.health_channel else 0, ch["viewers"])
        total, page = e.sessions.page(q.sessions_sort, q.sessions_reverse, q.sessions_filter, q.sessions_offset,
                                      q.sessions_limit)
        return EngineSnapshot(
            uptime_seconds=e.uptime(),
            urls=list(self.urls),
            channels=channels,
            sessions=page,
            recent_disconnects=e.sessions.recent_disconnects(5),
            pool=self.pool(),
            breakers={str(n): b.snapshot().to_dict() for n, b in e.breakers.items()},
            health=health,
            events=[ev.to_dict() for ev in e.events.since(q.events_since, 200)],
            now=e.clock.time(),
            sessions_total=total,
            sessions_offset=min(q.sessions_offset, total),
            loop=e.loop_lag.snapshot(),
            scan=e.scan.snapshot(),
            libraries=self.libraries(problems=q.library_problems),
        )

    def describe(self) -> ControlInfo:
        return ControlInfo("local", self.urls[0] if self.urls else "")

    def overview(self) -> dict[str, Any]:
        """What the web page shows: each channel's now and next (from the schedule, as the guide
        has them) with its state, health and viewers, and the server's own condition."""
        e = self.engine
        now = e.clock.time()
        channels = []
        for ch in e.channels_snapshot():
            n = ch["number"]
            channel = e.channels[n]
            now_next: list[dict[str, Any]] = []
            if channel.schedule is not None:
                slot = channel.schedule.at(now)
                for s in (slot, channel.schedule.at(slot.end + 1e-3)):  # (at the very end: float rounding)
                    now_next.append({"title": s.item.title, "start": s.start, "end": s.end})
            report = e.health_report(n, 0, ch["viewers"])
            channels.append({"number": n, "name": ch["name"], "group": ch["group"], "state": ch["state"],
                             "viewers": ch["viewers"], "health": report.get("status"),
                             "breaker": ch["breaker_state"], "on_air": ch["on_air"], "now": now_next[:1],
                             "next": now_next[1:], "logo": f"/iptv/logos/{n}.png",
                             "hls": f"/hls/channels/{n}/live.m3u8", "ts": f"/stream/channels/{n}.ts"})
        pool = e.pool.snapshot()
        return {"now": now, "uptime_seconds": round(e.uptime(), 1), "channels": channels,
                "viewers": sum(c["viewers"] for c in channels), "hls": e.hls.snapshot(),
                "loop": e.loop_lag.snapshot(),
                "pool": {k: pool[k] for k in ("running", "capacity", "capacity_reason", "memory_percent")},
                "events": [ev.to_dict() for ev in e.events.since(0, 8)]}

    # reads the HTTP API serves as they are (the engine's door for the server, besides snapshots)
    def sessions_summary(self, channel_id: int | None = None) -> dict[str, Any]:
        return self.engine.sessions.summary(channel_id)

    def pool(self) -> dict[str, Any]:
        snap = self.engine.pool.snapshot()
        snap["capacity_estimate"] = self.engine.capacity.snapshot()
        snap["cache"] = self.engine.cache.snapshot()
        return snap

    def breakers(self) -> dict[str, dict[str, Any]]:
        return {str(n): b.snapshot().to_dict() for n, b in sorted(self.engine.breakers.items())}

    async def restart(self, channel_id: int) -> CommandResult:
        d = self.engine.request_channel_restart(channel_id, source="console")
        if d.accepted:
            return CommandResult(True, f"Restart of channel {channel_id} accepted")
        return CommandResult(False, f"Restart of channel {channel_id} refused: {d.reason.value}, "
                             f"retry in {d.retry_after_seconds:.0f}s", d.reason.value, d.retry_after_seconds)

    async def show_error_screen(self, channel_id: int, seconds: float, params: dict[str, Any]) -> CommandResult:
        try:
            self.engine.show_error_screen(channel_id, seconds, params)
        except ValueError as exc:
            return CommandResult(False, f"Invalid error screen: {exc}", "invalid")
        return CommandResult(True, f"Error screen on air on channel {channel_id} for {seconds:g}s")

    def libraries(self, problems: int = 0) -> list[dict[str, Any]]:
        out = self.engine.libraries.snapshot()
        for lib in out:
            if problems:
                p = self.engine.libraries.problems(lib["name"])
                lib["problem_list"] = (p["problems"] + p["warnings"])[:problems]
        return out

    def playout(self, channel_id: int, hours: float = 24.0, limit: int = 2000) -> dict[str, Any]:
        """A channel's airings from now: start, end, item, collection, filler kind."""
        e = self.engine
        ch = e.channel(channel_id)
        now = e.clock.time()
        airings = []
        if ch.schedule is not None:
            for s in ch.schedule.upcoming(now, hours * 3600)[:limit]:
                airings.append({"start": s.start, "end": s.end, "kind": s.kind, "title": s.item.title,
                                "path": s.item.path or None, "collection": s.source, "seek": s.seek,
                                "filler": s.kind if s.kind != "program" else None})
        return {"channel": channel_id, "now": now, "hours": hours, "programmed": bool(ch.cfg.schedule or ch.cfg.slots),
                "airings": airings}

    async def upcoming(self, channel_id: int, hours: float = 24.0) -> dict[str, Any]:
        return self.playout(channel_id, hours)

    async def reload_config(self) -> dict[str, Any]:
        from .reload import reload_from_file

        return await reload_from_file(self.engine)

    async def reload(self) -> CommandResult:
        r = await self.reload_config()
        if not r["ok"]:
            return CommandResult(False, f"Reload refused: {r['error']}", "invalid")
        parts = [f"{k} {', '.join(map(str, v))}" for k, v in r.items() if k in ("added", "removed", "changed") and v]
        return CommandResult(True, "Reloaded: " + ("; ".join(parts) or "nothing changed"))

    def library(self, name: str) -> dict[str, Any]:
        return self.engine.libraries.detail(name)  # UnknownLibrary for a name not configured

    def library_problems(self, name: str) -> dict[str, Any]:
        return self.engine.libraries.problems(name)

    async def scan_library(self, name: str) -> CommandResult:
        from .library.manager import UnknownLibrary

        try:
            started = self.engine.libraries.scan(name)
        except UnknownLibrary as exc:
            return CommandResult(False, str(exc), "not_found")
        if not started:
            return CommandResult(False, f"Library {name} is already being scanned", "busy")
        return CommandResult(True, f"Scan of library {name} started")

    async def kick(self, session_id: str) -> CommandResult:
        if self.engine.sessions.kick(session_id):
            return CommandResult(True, f"Session {session_id} disconnected")
        return CommandResult(False, f"Session {session_id} not found", "not_found")

    async def preview(self, channel_id: int, params: dict[str, Any], width: int, height: int) -> PreviewImage:
        e = self.engine
        ch = e.channel(channel_id)
        cfg = e.error_screen_config(params)  # the channel's real size: text looks as viewers will see it
        msg: ErrorScreenMessage = e.error_screen_message(ch, "preview", params)
        return await e.error_screens.render_preview_async(msg, cfg, logo=ch.cfg.logo, size=(width, height))
