"""Who may tune in: one engine call for every stream request (the server maps refusals).

A viewer is admitted when the channel exists and has something to play, its circuit
breaker (with no error screen to show) lets it start, an HDHomeRun client finds a free
tuner, and the session limits (per channel, per address) have room. Nothing is started
before all of these pass; the refusal says which one failed, with the details a client
needs (retry time, limits).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .sessions import SessionLimitReached, SessionState, StreamSession
from .stream.throttle import StreamThrottler

if TYPE_CHECKING:
    from .pipeline.channel import Channel, Viewer
    from .engine import Engine


TUNER_KINDS = ("hdhr", "hls")  # session kinds that count against hdhr.tuner_count


class Refused(str, enum.Enum):
    UNKNOWN_CHANNEL = "unknown_channel"
    UNAVAILABLE = "unavailable"  # nothing playable
    BREAKER_OPEN = "breaker_open"
    TUNERS_BUSY = "tuners_busy"
    CHANNEL_FULL = "channel_full"
    ADDRESS_FULL = "address_full"
    START_FAILED = "start_failed"


@dataclass
class AdmissionRefused(Exception):
    reason: Refused
    error: str
    detail: Any = None
    retry_after_seconds: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.error)


class Admission:
    """An admitted viewer's stream: the adapter asks for chunks and reports how sending went;
    the session's accounting and the throttle stay in the engine."""

    def __init__(self, engine: "Engine", channel: "Channel", session: StreamSession, viewer: "Viewer") -> None:
        self.engine, self.channel, self.session, self.viewer = engine, channel, session, viewer
        self.throttler = StreamThrottler(engine.config.stream_throttler, engine.clock)
        self._t0 = 0.0

    @property
    def session_id(self) -> str:
        return self.session.session_id

    def on_end(self, callback: Callable[[str], None]) -> None:
        """``callback(reason)`` when the engine ends the stream (kick, idle timeout, shutdown)."""
        def ended(s: StreamSession) -> None:
            self.channel.detach(self.viewer)
            callback(s.disconnect_reason or "disconnected")

        self.session.on_disconnect = ended

    async def next_chunk(self, limit: int = 256 * 1024) -> tuple[bytes, float]:
        """The next bytes to send (b"" at the end) and how long to wait after sending them: a
        joining viewer gets its keyframe at once, the throttle's debt is paid after the send."""
        data = await self.viewer.read(limit)
        if not data:
            return b"", 0.0
        self.session.skips = self.viewer.cursor.skips
        delay = self.throttler.reserve(len(data))
        self.engine.sessions.sending(self.session)
        self._t0 = self.engine.clock.monotonic()
        return data, delay

    def sent(self, nbytes: int) -> None:
        self.throttler.observe_send(self.engine.clock.monotonic() - self._t0)
        self.engine.sessions.sent(self.session, nbytes)

    def send_failed(self, error: str) -> bool:
        """Count a failed send; True when the session is over (too many errors)."""
        self.engine.sessions.send_failed(self.session, error)
        return self.session.state is SessionState.DISCONNECTED

    def close(self, reason: str) -> None:
        self.session.on_disconnect = None  # ending here: nothing to abort
        self.engine.sessions.disconnect(self.session, reason)
        self.channel.detach(self.viewer)


def check(engine: "Engine", number: Any, hdhr: bool = False) -> "Channel":
    """The checks that start nothing (also answers HEAD requests). ``hdhr``: the viewer takes a
    tuner (HDHomeRun and HLS clients)."""
    from .engine import UnknownChannel

    try:
        channel = engine.channel(number)
    except UnknownChannel:
        raise AdmissionRefused(Refused.UNKNOWN_CHANNEL, f"Unknown channel {number!r}",
                               {"channels": sorted(engine.channels)}) from None
    if channel.schedule is None:
        raise AdmissionRefused(Refused.UNAVAILABLE, "Channel unavailable", channel.unavailable_reason)
    breaker = engine.breakers[channel.number]
    if not channel.running and not breaker.would_allow() and not engine.auto_heal.use_error_screen_fallback:
        b = breaker.snapshot()  # nothing to show while it is down
        raise AdmissionRefused(Refused.BREAKER_OPEN, "Channel is failing; its circuit breaker is open",
                               {"retry_after_seconds": b.retry_after_seconds}, b.retry_after_seconds)
    if hdhr:  # HDHomeRun and HLS clients use tuners: at most tuner_count distinct channels at once
        in_use = engine.hdhr_channels_in_use()
        limit = engine.config.hdhr.tuner_count
        if channel.number not in in_use and len(in_use) >= limit:
            raise AdmissionRefused(Refused.TUNERS_BUSY, "All tuners in use",
                                   {"tuner_count": limit, "channels_in_use": sorted(in_use)},
                                   extra={"x-hdhomerun-error": "805 All Tuners In Use"})
    return channel


async def admit(engine: "Engine", number: Any, client_addr: str, user_agent: str, hdhr: bool = False,
                kind: str | None = None) -> Admission:
    """Admit a viewer (session registered, channel started) or raise ``AdmissionRefused``.
    ``kind``: the session's kind ("stream", "hdhr", "hls"); HDHomeRun and HLS viewers take tuners."""
    kind = kind or ("hdhr" if hdhr else "stream")
    channel = check(engine, number, kind in TUNER_KINDS)
    try:
        session = engine.sessions.create(channel.number, client_addr, user_agent, kind=kind)
    except SessionLimitReached as exc:
        if exc.per_address:
            raise AdmissionRefused(Refused.ADDRESS_FULL, "Too many streams from this address",
                                   {"limit": exc.limit}, 30.0) from None
        raise AdmissionRefused(Refused.CHANNEL_FULL, "Max sessions reached",
                               {"channel_id": exc.channel_id, "limit": exc.limit}, 30.0) from None
    try:
        viewer = await channel.attach()
    except Exception as exc:
        engine.sessions.disconnect(session, f"could not start channel: {exc}")
        raise AdmissionRefused(Refused.START_FAILED, "Channel could not start", str(exc)) from None
    return Admission(engine, channel, session, viewer)
