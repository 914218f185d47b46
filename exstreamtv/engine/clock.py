"""Injected time, so state machines run against a fake clock in tests and the real one in production."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def time(self) -> float: ...


class SystemClock:
    """The real clocks: ``monotonic`` for intervals, ``time`` for wall-clock (schedules, logs)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()


class FakeClock:
    """A clock that only moves when told to; both readings advance together."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_700_000_000.0) -> None:
        self._mono = start
        self._wall = wall

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._mono += seconds
        self._wall += seconds


async def sleep_until(clock: Clock, deadline: float) -> None:
    """Sleep on the real loop until ``clock.monotonic()`` reaches ``deadline``."""
    delay = deadline - clock.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)
