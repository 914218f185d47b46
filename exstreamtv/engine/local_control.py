"""``LocalControl``: the engine's one door, in the same process.

The embedded console reads its snapshots and sends its commands here; the HTTP server's every
handler does too (the attached console then reaches this over HTTP). What is decided (who may
tune, which refusal, what a restart may do) is decided by the engine; this only gathers and asks.
"""

from __future__ import annotations

from typing import Any

from . import admission
from .config import Config
from .control import CommandResult, ControlInfo, EngineSnapshot, SnapshotQuery
from .guards.restart_guard import RestartDecision
from .pipeline.channel_state import ChannelState
from .pipeline.error_screens import ErrorScreenMessage, PreviewImage


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

    # ------------------------------------------------------------ the HTTP server's door
    # (what the server formats for its clients: M3U, HDHomeRun, XMLTV, the JSON API, streams)
    @property
    def config(self) -> Config:
        """The settings the adapter formats with (base URL, tokens, limits): read, never changed here."""
        return self.engine.config

    def healthz(self) -> dict[str, Any]:
        return {"status": "ok", "event_loop": self.engine.loop_lag.snapshot()}

    def channel_number(self, raw: Any) -> int:
        """The channel a path names (a number, as text or not); ``UnknownChannel`` otherwise."""
        return self.engine.channel(raw).number

    def channel_numbers(self) -> list[int]:
        return sorted(self.engine.channels)

    def listing(self) -> list[dict[str, Any]]:
        """Every channel in number order: number, name, group, logo file, and whether it has anything to air."""
        return [{"number": ch.number, "name": ch.name, "group": ch.cfg.group,
                 "available": ch.state is not ChannelState.UNAVAILABLE}
                for ch in sorted(self.engine.channels.values(), key=lambda c: c.number)]

    async def guide_xml(self, base: str) -> bytes:
        return await self.engine.guide_xml(base)

    async def logo(self, channel_id: int) -> tuple[bytes, str]:
        return await self.engine.logo(channel_id)

    async def artwork(self, key: str) -> bytes:
        return await self.engine.artwork.get(key)  # ArtworkMissing for an unknown key

    def hdhr_identity(self) -> dict[str, Any]:
        h = self.engine.config.hdhr
        return {"device_id": self.engine.hdhr_device_id, "name": h.friendly_name, "tuners": h.tuner_count}

    def tuners(self) -> list[dict[str, Any] | None]:
        return self.engine.tuners()

    def cache(self) -> dict[str, Any]:
        return {"cache": self.engine.cache.snapshot(), "capacity": self.engine.capacity.snapshot()}

    def library_names(self) -> list[str]:
        return sorted(self.engine.libraries.libraries)

    def channels(self) -> dict[str, Any]:
        return {"channels": self.engine.channels_snapshot(), "scan": self.engine.scan.snapshot()}

    def channel(self, channel_id: int) -> dict[str, Any]:
        return next(c for c in self.engine.channels_snapshot() if c["number"] == channel_id)

    def request_restart(self, channel_id: int, source: str = "api") -> RestartDecision:
        return self.engine.request_channel_restart(channel_id, source=source)

    def health(self, channel_id: int, history: int) -> dict[str, Any]:
        report = self.engine.health_report(channel_id)
        report["history"] = report["history"][-history:] if history else []
        return report

    def events(self, since: int, limit: int) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.engine.events.since(since, limit)]

    def tune_check(self, number: Any, hdhr: bool = False) -> None:
        """Would a viewer be let in (a HEAD request)? ``AdmissionRefused`` says why not."""
        admission.check(self.engine, number, hdhr)

    async def tune(self, number: Any, client: str, user_agent: str, hdhr: bool = False) -> admission.Admission:
        """A viewer's stream (its session, its reads); ``AdmissionRefused`` says why not."""
        return await admission.admit(self.engine, number, client, user_agent, hdhr)

    async def hls_playlist(self, number: Any, client: str, user_agent: str) -> tuple[str, int]:
        return await self.engine.hls.playlist(number, client, user_agent)

    async def hls_segment(self, number: Any, seq: Any, client: str, user_agent: str) -> Any:
        return await self.engine.hls.segment(number, seq, client, user_agent)
