"""The engine's event log: restarts, refusals, breaker transitions, spawn rejections, sessions.

A bounded in-memory ring with increasing ids, so ``GET /api/events?since=<id>`` and the
console can both read "what happened since I last looked". Listeners (the durable store,
metrics) are called synchronously and must not block.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .clock import Clock

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
        self._events: deque[Event] = deque(maxlen=capacity)
        self._next_id = 1
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, fn: Callable[[Event], None]) -> None:
        self._listeners.append(fn)

    def seed(self, events: list[Event]) -> None:
        """Load events of an earlier run (from the store) so ids keep increasing."""
        for ev in events:
            self._events.append(ev)
            self._next_id = max(self._next_id, ev.id + 1)

    def emit(self, kind: str, message: str, channel_id: int | None = None, level: int = logging.INFO,
             **data: Any) -> Event:
        ev = Event(self._next_id, self.clock.time(), kind, message, channel_id, data)
        self._next_id += 1
        self._events.append(ev)
        log.log(level, "%s%s", f"[ch {channel_id}] " if channel_id is not None else "", message)
        for fn in self._listeners:
            try:
                fn(ev)
            except Exception:  # a broken listener must not break the engine
                log.exception("event listener failed")
        return ev

    def since(self, event_id: int = 0, limit: int = 500) -> list[Event]:
        out = [e for e in self._events if e.id > event_id]
        return out[-limit:]

    def count(self, kind: str, **match: Any) -> int:
        return sum(1 for e in self._events if e.kind == kind and all(e.data.get(k) == v for k, v in match.items()))
