"""The engine's event log: restarts, refusals, breaker transitions, spawn rejections, sessions.

Bounded in-memory rings with increasing ids, so ``GET /api/events?since=<id>`` and the
console can both read "what happened since I last looked". Viewer events (``session_*``)
have a ring of their own: connection churn (thousands of joins and leaves a second) can
never push failures, restarts and warnings out of memory. Listeners (the durable store,
metrics) are called synchronously and must not block.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ..clock import Clock

log = logging.getLogger("exstreamtv.events")


@dataclass(frozen=True)
class Event:
    id: int
    timestamp: float
    kind: str
    message: str
    channel_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventLog:
    def __init__(self, clock: Clock, capacity: int = 2000) -> None:
        self.clock = clock
        self._viewer: deque[Event] = deque(maxlen=capacity)  # session_* (high volume)
        self._other: deque[Event] = deque(maxlen=capacity)
        self._next_id = 1
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    def _ring(self, kind: str) -> deque[Event]:
        return self._viewer if kind.startswith("session_") else self._other

    def seed(self, events: list[Event]) -> None:
        """Load events of an earlier run (from the store) so ids keep increasing."""
        for ev in events:
            self._ring(ev.kind).append(ev)
            self._next_id = max(self._next_id, ev.id + 1)

    def emit(self, kind: str, message: str, channel_id: int | None = None, level: int = logging.INFO,
             **data: Any) -> Event:
        ev = Event(self._next_id, self.clock.time(), kind, message, channel_id, data)
        self._next_id += 1
        self._ring(kind).append(ev)
        log.log(level, "%s%s", f"[ch {channel_id}] " if channel_id is not None else "", message)
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:  # a broken listener must not break the engine
                log.exception("event listener failed")
        return ev

    def since(self, event_id: int = 0, limit: int = 500) -> list[Event]:
        """The latest ``limit`` events after ``event_id``, in id order."""
        out: list[Event] = []
        for ring in (self._viewer, self._other):
            part = [e for e in ring if e.id > event_id]
            out.extend(part[-limit:])
        out.sort(key=lambda e: e.id)
        return out[-limit:]

    def count(self, kind: str, **match: Any) -> int:
        return sum(1 for e in self._ring(kind) if e.kind == kind and all(e.data.get(k) == v for k, v in match.items()))
