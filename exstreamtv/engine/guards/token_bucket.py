"""Token bucket on an injected clock: the spawn rate limit and the per-viewer throttle both use it."""

from __future__ import annotations

from ..clock import Clock


class TokenBucket:
    def __init__(self, clock: Clock, rate: float, capacity: float, initial: float | None = None) -> None:
        if rate <= 0 or capacity <= 0:
            raise ValueError("rate and capacity must be positive")
        self.clock = clock
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity if initial is None else min(initial, capacity)
        self._stamp = clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._stamp = now

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def set_rate(self, rate: float, capacity: float | None = None) -> None:
        self._refill()
        self.rate = rate
        if capacity is not None:
            self.capacity = capacity
            self._tokens = min(self._tokens, capacity)

    def try_take(self, amount: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= amount - 1e-9:  # float dust must not cost a whole token
            self._tokens -= amount
            return True
        return False

    def take(self, amount: float) -> None:
        """Take unconditionally (may go negative: the debt delays later takers)."""
        self._refill()
        self._tokens -= amount

    def wait_time(self, amount: float = 1.0) -> float:
        """Seconds until ``amount`` tokens are available (0 if now)."""
        self._refill()
        missing = min(amount, self.capacity) - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate
