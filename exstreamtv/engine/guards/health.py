"""Channel health from FFmpeg's ``-progress`` numbers and from the output timeline.

Status rules (thresholds in the ``health`` config section):

- ``idle``: nothing runs (nobody watches).
- ``failed``: the breaker is OPEN, or the pipeline has failed and the channel is recovering
  (error screen on air because of a failure).
- ``unhealthy``: no FFmpeg progress for ``no_progress_seconds``; FFmpeg speed below
  ``unhealthy_speed`` while it is not held back by our own backpressure; the output behind
  the wall clock by ``lag_unhealthy_seconds``; or the timeline had to be re-anchored (a gap,
  frozen or backwards timestamps: bytes may still flow, but the picture does not advance).
- ``degraded``: speed below ``degraded_speed`` (not held back), output behind by
  ``lag_degraded_seconds``, or dropped frames rising since the last sample.
- ``healthy`` otherwise.

Byte flow alone is never taken as health: a pipeline that emits bytes whose timestamps do
not advance makes the released media time fall behind the clock, which is caught above.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .circuit_breaker import BreakerState
from ..config import HealthConfig
from ..stream.mpegts import CLOCK

if TYPE_CHECKING:
    from ..pipeline.channel import Channel


class HealthStatus(str, enum.Enum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    FAILED = "failed"
    IDLE = "idle"


@dataclass
class HealthSample:
    t: float  # wall clock
    status: str
    fps: float
    speed: float
    bitrate_kbps: float
    dropped_frames: int
    lag_seconds: float
    bytes_out: int


@dataclass
class _Track:
    history: deque
    last_drops: int = 0
    last_reanchors: int = 0
    status: HealthStatus = HealthStatus.IDLE
    reasons: tuple[str, ...] = ()
    bad_streak: int = 0
    degraded_streak: int = 0


class HealthMonitor:
    def __init__(self, cfg: HealthConfig, interval: float) -> None:
        self.cfg = cfg
        self.interval = interval
        self._tracks: dict[int, _Track] = {}

    def _track(self, n: int) -> _Track:
        t = self._tracks.get(n)
        if t is None:
            maxlen = max(10, int(self.cfg.history_seconds / max(self.interval, 0.05)))
            t = self._tracks[n] = _Track(deque(maxlen=maxlen))
        return t

    def evaluate(self, ch: "Channel", now_mono: float) -> tuple[HealthStatus, list[str], float]:
        """(status, reasons, lag seconds) of a channel right now, without recording it."""
        from ..pipeline.channel import ChannelState

        cfg = self.cfg
        track = self._track(ch.number)
        reasons: list[str] = []
        lag = 0.0
        if ch.breaker.state is BreakerState.OPEN:
            return HealthStatus.FAILED, ["circuit breaker open"], lag
        if not ch.running:
            return HealthStatus.IDLE, [], lag
        if ch.state is ChannelState.RECOVERING or (ch.state is ChannelState.ERROR_SCREEN and ch.last_error
                                                    and ch.slate_active is False):
            return HealthStatus.FAILED, [ch.last_error or "pipeline failed"], lag
        pacer = ch.pacer
        if pacer is not None and pacer.anchor is not None:
            pos = pacer.position() or 0.0
            lag = max(0.0, (pos - pacer.released_time) / CLOCK)
        status = HealthStatus.HEALTHY
        if ch.state is ChannelState.STARTING:
            return status, ["starting"], lag
        for path, why in list(ch.media_problems.items())[-3:]:
            reasons.append(f"skipped {path}: {why}")
        held_back = pacer is not None and pacer.ahead_seconds() >= 0.5 * ch.streaming.readahead_seconds
        buffer_left = ch.buffer_left()
        low = buffer_left < cfg.low_buffer_seconds  # viewers are about to miss media
        young = ch.segment_started_at is not None and now_mono - ch.segment_started_at < cfg.start_grace_seconds
        speed = ch.windowed_speed(cfg.speed_window_seconds)
        # a pipeline is judged by what the viewer is missing: FFmpeg blocked on our backpressure,
        # or slow while the buffer still covers it, is not a failure
        # (the progress clock restarts with each process, so a new one has no_progress_seconds to begin)
        if (ch.progress_at is None or now_mono - ch.progress_at > cfg.no_progress_seconds) and low \
                and not held_back:
            reasons.append(f"no FFmpeg progress for over {cfg.no_progress_seconds:g}s and "
                           f"{buffer_left:.1f}s of media left")
            status = HealthStatus.UNHEALTHY
        if lag >= cfg.lag_unhealthy_seconds:
            reasons.append(f"output {lag:.1f}s behind the clock")
            status = HealthStatus.UNHEALTHY
        if pacer is not None and pacer.reanchors > track.last_reanchors:
            reasons.append("timeline gap (timestamps stalled or jumped)")
            status = HealthStatus.UNHEALTHY
        slow = speed is not None and not held_back and not young
        if slow and speed < cfg.unhealthy_speed and low:
            reasons.append(f"speed {speed:.2f}x with {buffer_left:.1f}s of media left")
            status = HealthStatus.UNHEALTHY
        if status is HealthStatus.HEALTHY:
            if slow and speed < cfg.degraded_speed:
                reasons.append(f"speed {speed:.2f}x")
                status = HealthStatus.DEGRADED
            if lag >= cfg.lag_degraded_seconds:
                reasons.append(f"output {lag:.1f}s behind the clock")
                status = HealthStatus.DEGRADED
            if ch.progress.drop_frames > track.last_drops and track.history:
                reasons.append(f"dropped frames rising ({ch.progress.drop_frames})")
                status = HealthStatus.DEGRADED
        return status, reasons, lag

    def sample(self, ch: "Channel", now_mono: float, now_wall: float) -> HealthStatus:
        """Evaluate, record a history sample, and keep streak counts for the auto-heal task."""
        status, reasons, lag = self.evaluate(ch, now_mono)
        track = self._track(ch.number)
        p = ch.progress
        track.history.append(HealthSample(now_wall, status.value, p.fps, p.speed, p.bitrate_kbps, p.drop_frames,
                                          round(lag, 3), ch.broadcaster.total_bytes if ch.broadcaster else 0))
        track.last_drops = p.drop_frames
        if ch.pacer is not None:
            track.last_reanchors = ch.pacer.reanchors
        track.status, track.reasons = status, tuple(reasons)
        track.bad_streak = track.bad_streak + 1 if status is HealthStatus.UNHEALTHY else 0
        track.degraded_streak = track.degraded_streak + 1 if status is HealthStatus.DEGRADED else 0
        return status

    def streaks(self, n: int) -> tuple[int, int]:
        t = self._track(n)
        return t.bad_streak, t.degraded_streak

    def reasons(self, n: int) -> tuple[str, ...]:
        return self._track(n).reasons

    def reset(self, n: int) -> None:
        t = self._track(n)
        t.bad_streak = t.degraded_streak = 0

    def report(self, ch: "Channel", sessions_active: int, breaker: dict[str, Any], now_mono: float,
               history_limit: int = 300) -> dict[str, Any]:
        """The ``GET /api/ai/channels/{n}/health`` body."""
        status, reasons, lag = self.evaluate(ch, now_mono)
        track = self._track(ch.number)
        p = ch.progress
        running = ch.running
        return {
            "channel_id": ch.number,
            "status": status.value,
            "reasons": reasons,
            "transcode": getattr(ch, "transcode", None) if running else None,  # "copy" or "encode: <why>"
            "current_fps": p.fps if running else 0.0,
            "current_speed": p.speed if running else 0.0,
            "current_bitrate_kbps": p.bitrate_kbps if running else 0.0,
            "dropped_frames": p.drop_frames if running else 0,
            "duplicated_frames": p.dup_frames if running else 0,
            "out_time_seconds": p.out_time if running else 0.0,
            "lag_seconds": round(lag, 3),
            "sessions_active": sessions_active,
            "breaker_state": breaker["state"],
            "restarts": ch.restarts,
            "last_error": ch.last_error,
            "buffer_seconds": round(ch.buffer_left(), 3) if running else 0.0,
            "media_problems": [{"path": k, "reason": v} for k, v in list(ch.media_problems.items())[-50:]],
            "skipped_airings": ch.skipped_airings,
            "short_airings": ch.short_airings,
            "uptime_seconds": round(now_mono - ch.started_at, 3) if running and ch.started_at else 0.0,
            "state": ch.state.value,
            "history": [dict(vars(s)) for s in list(track.history)[-history_limit:]] if history_limit > 0 else [],
        }
