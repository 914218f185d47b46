"""SessionManager: every viewer connection is a StreamSession with an explicit state machine.

States and the only transitions allowed (anything else raises ``InvalidTransition``)::

    CREATED -> ACTIVE        first bytes sent
    CREATED -> DISCONNECTED  client left (or was refused) before the first byte
    ACTIVE  -> IDLE          a send has been blocked ``idle_after_seconds`` (client stopped reading)
    IDLE    -> ACTIVE        the client reads again
    ACTIVE  -> ERROR         a send failed
    ERROR   -> ACTIVE        the next send worked
    ERROR   -> DISCONNECTED  ``max_errors`` reached
    ACTIVE/IDLE -> DISCONNECTED  client left, idle timeout, operator kick, shutdown

Limits: ``max_sessions_per_channel`` live sessions per channel and
``max_sessions_per_address`` from one client address (the next one is refused before any
FFmpeg work); Idle sessions (a send blocked: the client stopped reading and its socket
buffer is full) are disconnected after ``idle_timeout_seconds``; a
cleanup task every ``cleanup_interval_seconds`` moves disconnected sessions into a bounded
history (so the console can show who left and why) and frees the rest.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from .clock import Clock
from .config import SessionManagerConfig
from .observe.events import EventLog

log = logging.getLogger("exstreamtv.sessions")


class SessionState(str, enum.Enum):
    CREATED = "created"
    ACTIVE = "active"
    IDLE = "idle"
    ERROR = "error"
    DISCONNECTED = "disconnected"


ALLOWED: dict[SessionState, frozenset[SessionState]] = {
    SessionState.CREATED: frozenset({SessionState.ACTIVE, SessionState.DISCONNECTED}),
    SessionState.ACTIVE: frozenset({SessionState.IDLE, SessionState.ERROR, SessionState.DISCONNECTED}),
    SessionState.IDLE: frozenset({SessionState.ACTIVE, SessionState.DISCONNECTED}),
    SessionState.ERROR: frozenset({SessionState.ACTIVE, SessionState.DISCONNECTED}),
    SessionState.DISCONNECTED: frozenset(),
}


class InvalidTransition(Exception):
    pass


def host_of(client_addr: str) -> str:
    """The address part of ``ip:port`` / ``[v6]:port`` (what per-address limits count)."""
    if client_addr.startswith("["):
        return client_addr[1:client_addr.find("]")] if "]" in client_addr else client_addr
    return client_addr.rsplit(":", 1)[0] if client_addr.count(":") == 1 else client_addr


class SessionLimitReached(Exception):
    def __init__(self, channel_id: int, limit: int, per_address: bool = False) -> None:
        self.per_address = per_address
        super().__init__(f"Too many streams from one address (limit {limit})" if per_address else
                         f"Max sessions reached: channel {channel_id} already has {limit} viewers")
        self.channel_id = channel_id
        self.limit = limit


RATE_WINDOW = 5.0


@dataclass(eq=False)
class StreamSession:
    session_id: str
    channel_id: int
    client_addr: str
    user_agent: str
    created_at: float  # wall
    created_mono: float
    _state: SessionState = SessionState.CREATED
    bytes_sent: int = 0
    errors: int = 0
    skips: int = 0
    disconnect_reason: str | None = None
    ended_at: float | None = None
    ended_mono: float | None = None
    sending_since: float | None = None  # monotonic start of the send in progress
    idle_since: float | None = None
    _samples: deque = field(default_factory=deque)  # (monotonic, bytes)
    on_disconnect: Callable[["StreamSession"], None] | None = None
    kind: str = "stream"  # "hdhr" for HDHomeRun lineup clients (they use tuners), "hls" for HLS clients
    fetch_timeout: float | None = None  # HLS: the session ends when nothing is fetched for this long
    last_fetch: float | None = None  # HLS: monotonic time of the last playlist or segment request

    @property
    def state(self) -> SessionState:
        return self._state

    def duration(self, now_mono: float) -> float:
        end = self.ended_mono if self.ended_mono is not None else now_mono
        return max(0.0, end - self.created_mono)

    def current_rate_bps(self, now_mono: float) -> float:
        while self._samples and self._samples[0][0] < now_mono - RATE_WINDOW:
            self._samples.popleft()
        if not self._samples:
            return 0.0
        span = max(1.0, min(RATE_WINDOW, now_mono - self.created_mono))
        return sum(n for _, n in self._samples) * 8 / span

    def to_dict(self, now_mono: float) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "channel_id": self.channel_id,
            "client_addr": self.client_addr,
            "user_agent": self.user_agent,
            "state": self._state.value,
            "created_at": self.created_at,
            "duration_seconds": round(self.duration(now_mono), 3),
            "bytes_sent": self.bytes_sent,
            "current_rate_bps": round(self.current_rate_bps(now_mono), 1),
            "errors": self.errors,
            "skips": self.skips,
            "kind": self.kind,
            "disconnect_reason": self.disconnect_reason,
            "ended_at": self.ended_at,
        }


PAGE_SORT: dict[str, Callable[[StreamSession], Any]] = {
    "client": lambda s: s.client_addr, "ch": lambda s: s.channel_id, "state": lambda s: s._state.value,
    "dur": lambda s: -s.created_mono, "bytes": lambda s: s.bytes_sent, "rate": lambda s: 0,
}


class SessionManager:
    def __init__(self, cfg: SessionManagerConfig, clock: Clock, events: EventLog) -> None:
        self.cfg = cfg
        self.clock = clock
        self.events = events
        self._sessions: dict[str, StreamSession] = {}
        self.history: deque[StreamSession] = deque(maxlen=max(1, cfg.history_size))
        self._seq = itertools.count(1)
        self._task: asyncio.Task | None = None
        self._watch: asyncio.Task | None = None
        self.total_created = 0
        self.on_ended: Callable[[StreamSession], None] | None = None  # the durable store listens here
        self.duration_buckets = (10, 60, 300, 1800, 3600, 4 * 3600, float("inf"))
        self.duration_counts = [0] * len(self.duration_buckets)
        self.duration_sum = 0.0
        self.ended_total = 0
        self.total_refused = 0
        self.bytes_of_ended = 0

    # ------------------------------------------------------------ lifecycle of a session
    def live_count(self, channel_id: int) -> int:
        return sum(1 for s in self._sessions.values()
                   if s.channel_id == channel_id and s.state is not SessionState.DISCONNECTED)

    def create(self, channel_id: int, client_addr: str, user_agent: str, kind: str = "stream") -> StreamSession:
        """Register a new viewer, or raise ``SessionLimitReached`` (nothing else is started)."""
        address = host_of(client_addr)
        live = sum(1 for s in self._sessions.values()
                   if s.state is not SessionState.DISCONNECTED and host_of(s.client_addr) == address)
        if live >= self.cfg.max_sessions_per_address:
            self.total_refused += 1
            self.events.emit("session_refused", f"viewer {client_addr} refused: {live} streams already open from "
                             f"{address} (max_sessions_per_address)", channel_id, level=logging.WARNING)
            raise SessionLimitReached(channel_id, self.cfg.max_sessions_per_address, per_address=True)
        if self.live_count(channel_id) >= self.cfg.max_sessions_per_channel:
            self.total_refused += 1
            self.events.emit("session_refused", f"viewer {client_addr} refused: max sessions "
                             f"({self.cfg.max_sessions_per_channel}) reached", channel_id, level=logging.WARNING)
            raise SessionLimitReached(channel_id, self.cfg.max_sessions_per_channel)
        sid = f"s{next(self._seq)}-{secrets.token_hex(3)}"
        s = StreamSession(sid, channel_id, client_addr, (user_agent or "")[:200], self.clock.time(),
                          self.clock.monotonic(), kind=kind)
        self._sessions[sid] = s
        self.total_created += 1
        self.events.emit("session_started", f"viewer {client_addr} joined channel {channel_id}", channel_id,
                         session_id=sid)
        return s

    def _move(self, s: StreamSession, new: SessionState) -> None:
        if new not in ALLOWED[s.state]:
            raise InvalidTransition(f"session {s.session_id}: {s.state.value} -> {new.value} is not allowed")
        s._state = new

    def get(self, session_id: str) -> StreamSession | None:
        return self._sessions.get(session_id)

    def sending(self, s: StreamSession) -> None:
        """A send is starting (the watchdog marks the session Idle if it blocks too long)."""
        s.sending_since = self.clock.monotonic()

    def sent(self, s: StreamSession, nbytes: int) -> None:
        """A send completed: counts bytes and moves Created/Idle/Error to Active."""
        now = self.clock.monotonic()
        s.sending_since = None
        if s.state is SessionState.DISCONNECTED:
            return
        s.bytes_sent += nbytes
        s._samples.append((now, nbytes))
        if s.state is not SessionState.ACTIVE:
            self._move(s, SessionState.ACTIVE)
            s.idle_since = None

    def fetched(self, s: StreamSession, nbytes: int) -> None:
        """An HLS viewer fetched a playlist or a segment (its sign of life)."""
        s.last_fetch = self.clock.monotonic()
        self.sent(s, nbytes)

    def send_failed(self, s: StreamSession, error: str) -> None:
        s.sending_since = None
        if s.state is SessionState.DISCONNECTED:
            return
        s.errors += 1
        if s.state is SessionState.ERROR or s.errors >= self.cfg.max_errors:
            self.disconnect(s, f"send error: {error}")
            return
        if s.state is SessionState.ACTIVE:
            self._move(s, SessionState.ERROR)
        else:
            self.disconnect(s, f"send error: {error}")

    def disconnect(self, s: StreamSession, reason: str) -> bool:
        if s.state is SessionState.DISCONNECTED:
            return False
        self._move(s, SessionState.DISCONNECTED)
        s.disconnect_reason = reason
        s.ended_at = self.clock.time()
        s.ended_mono = self.clock.monotonic()
        s.sending_since = None
        self.events.emit("session_ended", f"viewer {s.client_addr} left channel {s.channel_id}: {reason}",
                         s.channel_id, session_id=s.session_id, reason=reason, bytes_sent=s.bytes_sent,
                         duration_seconds=round(s.duration(s.ended_mono), 3))
        dur = s.duration(s.ended_mono)
        self.ended_total += 1
        self.duration_sum += dur
        for i, edge in enumerate(self.duration_buckets):
            if dur <= edge:
                self.duration_counts[i] += 1
        if self.on_ended is not None:
            try:
                self.on_ended(s)
            except Exception:
                log.exception("session history write failed")
        cb, s.on_disconnect = s.on_disconnect, None
        if cb is not None:
            try:
                cb(s)
            except Exception:
                log.exception("disconnect callback failed")
        return True

    def kick(self, session_id: str) -> bool:
        s = self._sessions.get(session_id)
        if s is None or s.state is SessionState.DISCONNECTED:
            return False
        return self.disconnect(s, "kicked by operator")

    # ------------------------------------------------------------ periodic work
    def check_idle(self) -> None:
        """Active sessions blocked on a send become Idle; Idle too long are disconnected."""
        now = self.clock.monotonic()
        for s in list(self._sessions.values()):
            if s.fetch_timeout is not None and s.state is not SessionState.DISCONNECTED \
                    and now - (s.last_fetch if s.last_fetch is not None else s.created_mono) >= s.fetch_timeout:
                self.disconnect(s, f"stopped fetching for {s.fetch_timeout:g}s")
                continue
            if s.state is SessionState.ACTIVE and s.sending_since is not None \
                    and now - s.sending_since >= self.cfg.idle_after_seconds:
                self._move(s, SessionState.IDLE)
                s.idle_since = s.sending_since
                self.events.emit("session_idle", f"viewer {s.client_addr} stopped reading", s.channel_id,
                                 session_id=s.session_id)
            if s.state is SessionState.IDLE and s.idle_since is not None \
                    and now - s.idle_since >= self.cfg.idle_timeout_seconds:
                self.disconnect(s, f"idle for {self.cfg.idle_timeout_seconds:g}s")

    def cleanup(self) -> int:
        """Move disconnected sessions to the history and free them; returns how many."""
        gone = [s for s in self._sessions.values() if s.state is SessionState.DISCONNECTED]
        for s in gone:
            del self._sessions[s.session_id]
            self.bytes_of_ended += s.bytes_sent
            s._samples.clear()
            s.on_disconnect = None
            self.history.append(s)
        return len(gone)

    async def _cleanup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.cleanup_interval_seconds)
            self.cleanup()

    async def _watch_loop(self) -> None:
        period = max(0.05, min(1.0, self.cfg.idle_after_seconds / 4))
        while True:
            await asyncio.sleep(period)
            self.check_idle()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._cleanup_loop(), name="session-cleanup")
        self._watch = loop.create_task(self._watch_loop(), name="session-watch")

    def shutdown(self) -> None:
        for t in (self._task, self._watch):
            if t:
                t.cancel()
        for s in list(self._sessions.values()):
            self.disconnect(s, "server shutting down")

    # ------------------------------------------------------------ reading
    def sessions(self, channel_id: int | None = None, include_disconnected: bool = True) -> list[StreamSession]:
        return [s for s in self._sessions.values() if (channel_id is None or s.channel_id == channel_id)
                and (include_disconnected or s.state is not SessionState.DISCONNECTED)]

    def summary(self, channel_id: int | None = None) -> dict[str, Any]:
        """The guide's aggregate shape for ``GET /api/ai/sessions``."""
        now = self.clock.monotonic()
        live = self.sessions(channel_id, include_disconnected=False)
        by_channel: dict[str, int] = {}
        for s in live:
            by_channel[str(s.channel_id)] = by_channel.get(str(s.channel_id), 0) + 1
        durations = [s.duration(now) for s in live]
        return {
            "total_sessions": len(live),
            "sessions_by_channel": by_channel,
            "average_duration_seconds": round(sum(durations) / len(durations), 3) if durations else 0.0,
            "total_bytes_sent": sum(s.bytes_sent for s in live),
            "sessions": [s.to_dict(now) for s in live],
        }

    def live_counts(self) -> dict[int, int]:
        """Live sessions per channel, in one pass."""
        out: dict[int, int] = {}
        for s in self._sessions.values():
            if s._state is not SessionState.DISCONNECTED:
                out[s.channel_id] = out.get(s.channel_id, 0) + 1
        return out

    def page(self, sort: str = "client", reverse: bool = False, text: str = "", offset: int = 0,
             limit: int = 50) -> tuple[int, list[dict[str, Any]]]:
        """(number of live sessions that match, the ``limit`` of them from ``offset`` as dicts).

        What a console shows: only the rows in view are turned into dicts, so a refresh costs
        the same at 50 and at 5,000 sessions (sorting is by plain attributes)."""
        now = self.clock.monotonic()
        live = [s for s in self._sessions.values() if s._state is not SessionState.DISCONNECTED]
        if text:
            t = text.lower()
            live = [s for s in live if t in s.client_addr.lower() or t in str(s.channel_id)
                    or t in s._state.value or t in s.user_agent.lower()]
        key = PAGE_SORT.get(sort, PAGE_SORT["client"])
        if sort == "rate":
            live.sort(key=lambda s: s.current_rate_bps(now), reverse=reverse)
        else:
            live.sort(key=key, reverse=reverse)
        offset = max(0, min(offset, len(live)))
        return len(live), [s.to_dict(now) for s in live[offset:offset + max(0, limit)]]

    def recent_disconnects(self, limit: int = 20) -> list[dict[str, Any]]:
        now = self.clock.monotonic()
        ended = list(self.history) + [s for s in self._sessions.values() if s.state is SessionState.DISCONNECTED]
        ended.reverse()  # newest first, also among equal end times
        ended.sort(key=lambda s: s.ended_at or 0, reverse=True)
        return [s.to_dict(now) for s in ended[:limit]]
