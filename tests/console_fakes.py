"""A stable, synthetic EngineControl for console snapshots and the console benchmark."""

from __future__ import annotations

from typing import Any

from exstreamtv.engine.control import CommandResult, EngineSnapshot, SnapshotQuery
from exstreamtv.engine.pipeline.error_screens import PreviewImage

T0 = 1_790_000_000.0


def fake_snapshot(channels: int = 3, sessions: int = 4, t: float = T0) -> EngineSnapshot:
    chans, health, breakers = [], {}, {}
    states = ["playing", "error_screen", "idle", "playing", "recovering"]
    for i in range(1, channels + 1):
        state = states[(i - 1) % len(states)]
        brk = {"state": "OPEN" if state == "recovering" else ("HALF_OPEN" if state == "error_screen" else "CLOSED"),
               "failures_in_window": 5 if state == "recovering" else (i % 3), "opened_at": None,
               "retry_at": None, "retry_after_seconds": 87.0 if state == "recovering" else None}
        running = state != "idle"
        chans.append({
            "number": i, "name": f"Channel {i:02d} {'News' if i % 2 else 'Movies'}", "group": "Demo", "logo": None,
            "state": state, "viewers": (sessions // channels) + (1 if i <= sessions % channels else 0),
            "now_playing": {"title": f"Programme {i}", "start": t - 600, "end": t + 1200, "offset_seconds": 600,
                            "path": f"/media/{i}.mp4"},
            "on_air": {"kind": "error_screen", "title": "Technical Difficulties", "start": None, "end": None}
            if state == "error_screen" else None,
            "pid": 1000 + i if running else None, "restarts": i % 4, "failures": i % 2, "last_error": "",
            "bytes_out": i * 10_000_000, "buffered_seconds": 3.0, "uptime_seconds": 3600.0,
            "ffmpeg": {"fps": 30.0 if running else 0, "speed": 1.0 if running else 0,
                       "bitrate_kbps": 3000.0 + i if running else 0, "drop_frames": 0, "dup_frames": 0,
                       "out_time": 600.0},
            "breaker": brk, "breaker_state": brk["state"]})
        breakers[str(i)] = brk
        health[str(i)] = {
            "channel_id": i, "status": {"playing": "healthy", "error_screen": "failed", "idle": "idle",
                                        "recovering": "failed"}[state],
            "reasons": [], "dropped_frames": 0, "lag_seconds": 0.0,
            "history": [{"t": t - 60 + k, "status": "healthy", "fps": 29 + (k % 3), "speed": 1.0 + (k % 5) / 100,
                         "bitrate_kbps": 2900 + 20 * (k % 7), "dropped_frames": 0, "lag_seconds": 0.0,
                         "bytes_out": k * 1000} for k in range(60)]}
    sess = [{"session_id": f"s{k}", "channel_id": (k % channels) + 1, "client_addr": f"192.168.1.{10 + k}:5{k:04d}",
             "user_agent": "VLC/3.0", "state": "active" if k % 5 else "idle", "created_at": t - 100 * k,
             "duration_seconds": 100.0 * k + 5, "bytes_sent": 1_500_000 * (k + 1), "current_rate_bps": 3_200_000.0,
             "errors": 0} for k in range(sessions)]
    events = [{"id": k + 1, "timestamp": t - 30 + k, "kind": kind, "message": msg, "channel_id": 1, "data": {}}
              for k, (kind, msg) in enumerate([
                  ("session_started", "viewer 192.168.1.10:50000 joined channel 1"),
                  ("pipeline_failed", "channel 2: ffmpeg exited with code 1"),
                  ("restart_accepted", "restart of channel 2 accepted (pipeline)"),
                  ("restart_refused", "restart of channel 2 refused: channel_cooldown, retry in 28.0s"),
                  ("breaker_transition", "breaker of channel 5: CLOSED -> OPEN (5 failures in 300s)")])]
    pool = {"running": sum(1 for c in chans if c["pid"]), "capacity": 64, "capacity_reason": "configured",
            "spawn_tokens": 4.2, "memory_percent": 41.5, "memory_limit_percent": 85.0, "fd_used": 180,
            "fd_limit": 1024, "fd_reserve": 100, "rejected_spawns": 2, "rejections_by_reason": {"rate_limit": 2},
            "zombies_reaped": 1, "spawned_total": 40, "processes": []}
    return EngineSnapshot(uptime_seconds=3723.0, urls=["http://192.168.1.5:8411"], channels=chans, sessions=sess,
                          recent_disconnects=[], pool=pool, breakers=breakers, health=health, events=events, now=t,
                          loop={"current_ms": 1.2, "p99_ms": 3.4, "max_1m_ms": 8.0, "max_ms": 12.0,
                                "over_threshold": 0, "threshold_ms": 100.0})


class FakeControl:
    def __init__(self, snap: EngineSnapshot) -> None:
        self.snap = snap
        self.commands: list[tuple[str, Any]] = []
        self.queries: list[SnapshotQuery] = []

    def snapshot(self, query: SnapshotQuery | None = None) -> EngineSnapshot:
        q = query or SnapshotQuery()
        self.queries.append(q)
        s = self.snap
        live = [x for x in s.sessions if not q.sessions_filter
                or q.sessions_filter.lower() in (x["client_addr"] + str(x["channel_id"]) + x["state"]).lower()]
        field = {"client": "client_addr", "ch": "channel_id", "state": "state", "dur": "duration_seconds",
                 "bytes": "bytes_sent", "rate": "current_rate_bps"}[q.sessions_sort]
        live.sort(key=lambda x: x[field], reverse=q.sessions_reverse)
        page = live[q.sessions_offset:q.sessions_offset + q.sessions_limit]
        return EngineSnapshot(**{**s.__dict__, "events": [e for e in s.events if e["id"] > q.events_since],
                                 "sessions": page, "sessions_total": len(live),
                                 "sessions_offset": min(q.sessions_offset, len(live))})

    def describe(self):
        from exstreamtv.engine.control import ControlInfo

        return ControlInfo()

    async def restart(self, channel_id: int) -> CommandResult:
        self.commands.append(("restart", channel_id))
        return CommandResult(True, f"Restart of channel {channel_id} accepted")

    async def show_error_screen(self, channel_id: int, seconds: float, params: dict) -> CommandResult:
        self.commands.append(("error_screen", (channel_id, seconds, params)))
        return CommandResult(True, "on air")

    async def kick(self, session_id: str) -> CommandResult:
        self.commands.append(("kick", session_id))
        return CommandResult(True, "kicked")

    async def preview(self, channel_id: int, params: dict, width: int, height: int) -> PreviewImage:
        return PreviewImage(width, height, bytes([26, 26, 46]) * (width * height))
