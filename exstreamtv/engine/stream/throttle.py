"""StreamThrottler: every byte that leaves for a viewer passes one (one per session).

Modes (``stream_throttler.mode``):
- ``realtime``: a token bucket at ``target_bitrate_bps`` (bucket size 0.5 s of target).
- ``burst``: up to 2x the target while a burst allowance (``burst_seconds`` of target
  bytes) lasts; bytes sent above the target spend it, time spent below the target earns
  it back (never above its size); once spent, the target rate until a quarter of the
  allowance is earned back.
- ``adaptive``: the rate follows the viewer's drain. Once per second it looks at how long
  sends were blocked on the socket: under 10% of the second and the rate goes up 10%
  (toward ``adaptive_ceiling_factor`` x target); over 50% (the socket backs up) and it
  goes down 25% (never under half the target).
- ``disabled``: no limit.

``reserve(n)`` returns the seconds to wait before sending ``n`` bytes, so the throttler
is a pure state machine on an injected clock; the stream loop does the sleeping.
Starvation cannot happen here: the source side (the broadcaster's bounded buffer) makes a
viewer that falls behind skip ahead to the newest keyframe instead of queueing without bound.
"""

from __future__ import annotations

import enum

from ..clock import Clock
from ..config import StreamThrottlerConfig
from ..guards.token_bucket import TokenBucket


class ThrottleMode(str, enum.Enum):
    REALTIME = "realtime"
    BURST = "burst"
    ADAPTIVE = "adaptive"
    DISABLED = "disabled"


class StreamThrottler:
    BUCKET_SECONDS = 0.5
    ADAPT_PERIOD = 1.0

    def __init__(self, cfg: StreamThrottlerConfig, clock: Clock) -> None:
        self.clock = clock
        self.mode = ThrottleMode(cfg.mode) if cfg.enabled else ThrottleMode.DISABLED
        self.target_Bps = cfg.target_bitrate_bps / 8.0
        self.ceiling_Bps = self.target_Bps * cfg.adaptive_ceiling_factor
        self.floor_Bps = self.target_Bps / 2
        self.burst_capacity = cfg.burst_seconds * self.target_Bps
        self.burst_credit = self.burst_capacity
        self.bursting = self.mode is ThrottleMode.BURST
        self.rate_Bps = self.target_Bps * (2 if self.mode is ThrottleMode.BURST else 1)
        self.bucket = TokenBucket(clock, self.rate_Bps, max(1.0, self.rate_Bps * self.BUCKET_SECONDS))
        self._last = clock.monotonic()
        self._period_start = self._last
        self._blocked = 0.0
        self.bytes_total = 0

    @property
    def rate_bps(self) -> float:
        return 0.0 if self.mode is ThrottleMode.DISABLED else self.rate_Bps * 8

    def reserve(self, nbytes: int) -> float:
        """Account for ``nbytes`` about to be sent; returns how long to wait before sending them."""
        self.bytes_total += nbytes
        if self.mode is ThrottleMode.DISABLED:
            return 0.0
        now = self.clock.monotonic()
        if self.mode is ThrottleMode.BURST:
            dt = now - self._last
            self.burst_credit = min(self.burst_capacity, self.burst_credit + dt * self.target_Bps)
            self.burst_credit -= nbytes  # earning at target, spending what is sent: net = excess over target
            if self.bursting and self.burst_credit <= 0:
                self.bursting = False
            elif not self.bursting and self.burst_credit >= 0.25 * self.burst_capacity:
                self.bursting = True  # hysteresis: a quarter of the allowance earned back first
            want = 2 * self.target_Bps if self.bursting else self.target_Bps
            self.burst_credit = max(0.0, self.burst_credit)
            if want != self.rate_Bps:
                self._set_rate(want)
        elif self.mode is ThrottleMode.ADAPTIVE and now - self._period_start >= self.ADAPT_PERIOD:
            share = self._blocked / (now - self._period_start)
            if share > 0.5:
                self._set_rate(max(self.floor_Bps, self.rate_Bps * 0.75))
            elif share < 0.1:
                self._set_rate(min(self.ceiling_Bps, self.rate_Bps * 1.1))
            self._period_start, self._blocked = now, 0.0
        self._last = now
        wait = self.bucket.wait_time(nbytes) if nbytes <= self.bucket.capacity else \
            max(0.0, (nbytes - self.bucket.tokens) / self.bucket.rate)
        self.bucket.take(nbytes)
        return wait

    def observe_send(self, blocked_seconds: float) -> None:
        """Report how long a send waited on the viewer's socket (drives ``adaptive``)."""
        self._blocked += max(0.0, blocked_seconds)

    def _set_rate(self, rate: float) -> None:
        self.rate_Bps = rate
        self.bucket.set_rate(rate, max(1.0, rate * self.BUCKET_SECONDS))
