"""Event-loop lag: how late a cheap periodic timer fires.

Everything in the process (viewers' sends, the pacer, channel supervisors, the console)
shares one asyncio loop, so anything that blocks it stalls every viewer. The monitor sleeps
``interval`` seconds again and again and records how much later than asked it woke up. The
figures go to the console header, ``/metrics`` and ``/healthz``; a lag above ``threshold``
is an event (at most one per ``event_every`` seconds), so a stall is never silent.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

from ..clock import Clock
from .events import EventLog


class LoopLagMonitor:
    def __init__(self, clock: Clock, events: EventLog | None, interval: float = 0.1, threshold: float = 0.1,
                 window_seconds: float = 60.0, event_every: float = 10.0) -> None:
        self.clock = clock
        self.events = events
        self.interval = interval
        self.threshold = threshold
        self.event_every = event_every
        self.samples: deque[tuple[float, float]] = deque(maxlen=max(10, int(window_seconds / interval)))
        self.current = 0.0
        self.max_ever = 0.0
        self.over_threshold = 0  # samples above the threshold since start
        self.total_seconds = 0.0  # sum of lags (Prometheus counter)
        self.count = 0
        self._last_event = -1e18
        self._worst_since_event = 0.0
        self._task: asyncio.Task | None = None

    def record(self, lag: float) -> None:
        now = self.clock.monotonic()
        lag = max(0.0, lag)
        self.current = lag
        self.samples.append((now, lag))
        self.max_ever = max(self.max_ever, lag)
        self.total_seconds += lag
        self.count += 1
        if lag > self.threshold:
            self.over_threshold += 1
            self._worst_since_event = max(self._worst_since_event, lag)
            if self.events is not None and now - self._last_event >= self.event_every:
                self._last_event = now
                worst, self._worst_since_event = self._worst_since_event, 0.0
                self.events.emit("loop_lag", f"event loop blocked for {worst * 1000:.0f} ms (viewers wait while "
                                 "it is)", None, level=logging.WARNING, lag_ms=round(worst * 1000, 1))

    def percentile(self, q: float) -> float:
        if not self.samples:
            return 0.0
        values = sorted(lag for _, lag in self.samples)
        return values[min(len(values) - 1, int(q * len(values)))]

    def recent_max(self, seconds: float) -> float:
        since = self.clock.monotonic() - seconds
        return max((lag for t, lag in self.samples if t >= since), default=0.0)

    def snapshot(self) -> dict[str, Any]:
        return {"current_ms": round(self.current * 1000, 2), "p99_ms": round(self.percentile(0.99) * 1000, 2),
                "max_1m_ms": round(self.recent_max(60) * 1000, 2), "max_ms": round(self.max_ever * 1000, 2),
                "over_threshold": self.over_threshold, "threshold_ms": self.threshold * 1000}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - start - self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag")

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
