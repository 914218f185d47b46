"""Restart guards: the one gate every channel restart passes.

Checked in this order: a global throttle (at most ``max_restarts`` in any sliding
``window_seconds``), a per-channel cooldown (``channel_cooldown_seconds`` between restarts
of one channel), and the channel's circuit breaker (OPEN blocks). A refusal is a typed
result with its reason and the seconds until it would be allowed.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from .circuit_breaker import CircuitBreaker
from ..clock import Clock
from ..config import RestartGuardConfig


class RefusalReason(str, enum.Enum):
    GLOBAL_THROTTLE = "global_throttle"
    CHANNEL_COOLDOWN = "channel_cooldown"
    CIRCUIT_OPEN = "circuit_open"


@dataclass(frozen=True)
class RestartDecision:
    accepted: bool
    reason: RefusalReason | None = None
    retry_after_seconds: float = 0.0

    def to_dict(self) -> dict:
        if self.accepted:
            return {"accepted": True}
        return {"accepted": False, "reason": self.reason.value if self.reason else None,
                "retry_after_seconds": round(self.retry_after_seconds, 3)}


class RestartGuard:
    def __init__(self, cfg: RestartGuardConfig, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        self._recent: deque[float] = deque()
        self._last_by_channel: dict[int, float] = {}

    def _prune(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self.cfg.window_seconds:
            self._recent.popleft()

    def check(self, channel_id: int, breaker: CircuitBreaker | None) -> RestartDecision:
        """Decide, and record the restart when accepted (takes a half-open trial)."""
        now = self.clock.monotonic()
        self._prune(now)
        if len(self._recent) >= self.cfg.max_restarts:
            wait = self._recent[0] + self.cfg.window_seconds - now
            return RestartDecision(False, RefusalReason.GLOBAL_THROTTLE, max(0.0, wait))
        last = self._last_by_channel.get(channel_id)
        if last is not None and now - last < self.cfg.channel_cooldown_seconds:
            return RestartDecision(False, RefusalReason.CHANNEL_COOLDOWN,
                                   self.cfg.channel_cooldown_seconds - (now - last))
        if breaker is not None and not breaker.would_allow():
            return RestartDecision(False, RefusalReason.CIRCUIT_OPEN, breaker.retry_after())
        self._recent.append(now)
        self._last_by_channel[channel_id] = now
        return RestartDecision(True)

    def restarts_in_window(self) -> int:
        self._prune(self.clock.monotonic())
        return len(self._recent)
