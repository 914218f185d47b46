"""What a running channel reports: FFmpeg's recent speed, the media it holds beyond the air,
what is on now, and the snapshot the API and the console show.

``Readings`` is the part of ``Channel`` that is read by others (a mixin, as ``Planning`` is).
"""

from __future__ import annotations

from typing import Any

from ..onair.schedule import Slot
from ..stream.mpegts import CLOCK


class Readings:
    """Readings of a channel (a mixin of ``Channel``)."""

    def windowed_speed(self, seconds: float) -> float | None:
        """FFmpeg's speed over the last ``seconds`` (FFmpeg's own figure is since the process
        started, so always low in its first seconds); None without two samples in the window."""
        w = self.speed_window
        if len(w) < 2:
            return None
        end_t, end_out = w[-1]
        start = next(((t, o) for t, o in w if t >= end_t - seconds), w[0])
        span = end_t - start[0]
        return (end_out - start[1]) / span if span >= 1.0 else None

    def buffer_left(self) -> float:
        """Seconds of media the channel holds beyond what is on air now (what viewers can still be
        fed while FFmpeg is slow or stalled)."""
        p = self.pacer
        if p is None or not p.pending:
            return 0.0 if p is None or p.position() is None else max(0.0, (p.released_time - p.position()) / CLOCK)
        pos = p.position()
        return max(0.0, (p.pending[-1].time - (pos if pos is not None else p.pending[0].time)) / CLOCK)

    def now_playing(self) -> Slot | None:
        return self.schedule.at(self.host.clock.time()) if self.schedule else None

    def snapshot(self) -> dict[str, Any]:
        slot = self.now_playing()
        b = self.broadcaster
        return {
            "number": self.number,
            "name": self.name,
            "group": self.cfg.group,
            "logo": self.cfg.logo,
            "state": self.state.value,
            "viewers": self.viewers,
            "now_playing": None if slot is None else {
                "title": slot.item.title, "start": slot.start, "end": slot.end,
                "offset_seconds": round(slot.offset, 3), "path": slot.item.path},
            "on_air": None if self.on_air is None else {
                "kind": self.on_air.kind, "title": self.on_air.title, "start": self.on_air.start,
                "end": self.on_air.end},
            "pid": self.current.pid if self.current is not None and self.current.returncode is None else None,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_error": self.last_error or self.unavailable_reason or "",
            "bytes_out": b.total_bytes if b is not None else 0,
            "buffered_seconds": round(b.buffered_seconds, 3) if b is not None else 0.0,
            "hls": self.hls.snapshot() if self.hls is not None else None,
            "transcode": self.transcode,
            "uptime_seconds": round(self.host.clock.monotonic() - self.started_at, 3)
            if self.started_at is not None and self.running else 0.0,
            "ffmpeg": {"fps": self.progress.fps, "speed": self.progress.speed,
                       "bitrate_kbps": self.progress.bitrate_kbps, "drop_frames": self.progress.drop_frames,
                       "dup_frames": self.progress.dup_frames, "out_time": self.progress.out_time},
        }
