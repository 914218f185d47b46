"""Per-channel circuit breaker: stop hammering a channel whose source keeps failing.

CLOSED -> OPEN after ``failure_threshold`` failures inside a sliding ``window_seconds``;
OPEN blocks spawns and restarts for ``open_seconds``; then HALF_OPEN lets exactly one
trial through: its success closes the breaker (failures cleared), its failure reopens it.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..clock import Clock
from ..config import CircuitBreakerConfig


class BreakerState(str, enum.Enum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"


@dataclass(frozen=True)
class BreakerSnapshot:
    state: BreakerState
    failures_in_window: int
    opened_at: float | None  # wall clock
    retry_at: float | None  # wall clock
    retry_after_seconds: float | None
    trial_in_progress: bool

    def to_dict(self) -> dict:
        return {"state": self.state.value, "failures_in_window": self.failures_in_window,
                "opened_at": self.opened_at, "retry_at": self.retry_at,
                "retry_after_seconds": self.retry_after_seconds}


Transition = Callable[["CircuitBreaker", BreakerState, BreakerState, str], None]


class CircuitBreaker:
    def __init__(self, channel_id: int, cfg: CircuitBreakerConfig, clock: Clock,
                 on_transition: Transition | None = None) -> None:
        self.channel_id = channel_id
        self.cfg = cfg
        self.clock = clock
        self.on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._failures: deque[float] = deque()
        self._opened_mono: float | None = None
        self._opened_wall: float | None = None
        self._trial_taken = False

    # -- state
    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    def _tick(self) -> None:
        if self._state is BreakerState.OPEN and self._opened_mono is not None \
                and self.clock.monotonic() - self._opened_mono >= self.cfg.open_seconds:
            self._trial_taken = False
            self._move(BreakerState.HALF_OPEN, "open time elapsed; one trial allowed")

    def _move(self, new: BreakerState, reason: str) -> None:
        old = self._state
        if old is new:
            return
        self._state = new
        if self.on_transition:
            self.on_transition(self, old, new, reason)

    def _prune(self) -> None:
        horizon = self.clock.monotonic() - self.cfg.window_seconds
        while self._failures and self._failures[0] <= horizon:
            self._failures.popleft()

    def retry_after(self) -> float:
        """Seconds until a spawn/restart would be allowed (0 if now)."""
        self._tick()
        if self._state is BreakerState.OPEN and self._opened_mono is not None:
            return max(0.0, self.cfg.open_seconds - (self.clock.monotonic() - self._opened_mono))
        return 0.0

    # -- decisions
    def allow(self) -> bool:
        """May a spawn/restart happen now? In HALF_OPEN the first call takes the single trial."""
        self._tick()
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.HALF_OPEN and not self._trial_taken:
            self._trial_taken = True
            return True
        return False

    def would_allow(self) -> bool:
        """Like ``allow`` but without taking the half-open trial."""
        self._tick()
        return self._state is BreakerState.CLOSED or (self._state is BreakerState.HALF_OPEN and not self._trial_taken)

    def record_success(self) -> None:
        self._tick()
        if self._state is BreakerState.HALF_OPEN:
            self._failures.clear()
            self._opened_mono = self._opened_wall = None
            self._move(BreakerState.CLOSED, "trial succeeded")

    def record_failure(self, reason: str = "failure") -> None:
        self._tick()
        now = self.clock.monotonic()
        if self._state is BreakerState.OPEN:
            return  # already open: late reports of the same outage do not extend it
        if self._state is BreakerState.HALF_OPEN:
            self._open(f"trial failed: {reason}")
            return
        self._failures.append(now)
        self._prune()
        if len(self._failures) >= self.cfg.failure_threshold:
            self._open(f"{len(self._failures)} failures in {self.cfg.window_seconds:g}s (last: {reason})")

    def _open(self, reason: str) -> None:
        self._opened_mono = self.clock.monotonic()
        self._opened_wall = self.clock.time()
        self._trial_taken = False
        self._move(BreakerState.OPEN, reason)

    def snapshot(self) -> BreakerSnapshot:
        self._tick()
        self._prune()
        retry = self.retry_after() if self._state is BreakerState.OPEN else None
        return BreakerSnapshot(
            state=self._state,
            failures_in_window=len(self._failures),
            opened_at=self._opened_wall,
            retry_at=(self.clock.time() + retry) if retry is not None else None,
            retry_after_seconds=retry,
            trial_in_progress=self._state is BreakerState.HALF_OPEN and self._trial_taken,
        )
