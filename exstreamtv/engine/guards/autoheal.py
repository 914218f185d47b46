"""Health and auto-heal: every running channel is sampled on an interval; an unhealthy one is
failed (recovery and a guarded restart follow), a degraded one is hot-swapped; each FFmpeg's CPU
is sampled for the capacity estimate, and the normalised cache follows the channels' next day.

``AutoHeal`` is the part of ``Engine`` that runs this (a mixin, as ``ChannelLineups`` is).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .health import HealthStatus

log = logging.getLogger("exstreamtv.engine")


class AutoHeal:
    """The engine's health loop (a mixin of ``Engine``)."""

    async def _health_loop(self) -> None:
        interval = self.auto_heal.check_interval_seconds
        last_want = self.clock.monotonic()
        while True:
            await asyncio.sleep(interval)
            if self.clock.monotonic() - last_want > 60:  # the cache follows the channels' next day
                last_want = self.clock.monotonic()
                try:
                    self.want_cached()
                except Exception:
                    log.exception("cache queueing failed")
            try:
                self.check_health()
            except Exception:
                log.exception("health check failed")

    def sample_capacity(self) -> None:
        """What each running channel's FFmpeg costs now, by how it airs (copy or encode)."""
        per_channel = []
        for ch in self.channels.values():
            cur = ch.current
            if ch.running and cur is not None and cur.returncode is None and ch.current_plan is not None \
                    and ch.current_plan.kind == "program" and ch.transcode:
                stats = self.pool.readings.process_stats(cur.pid)
                if stats is not None:
                    per_channel.append(("copy" if ch.transcode.startswith("copy") else "encode", stats[1]))
        self.capacity.sample(per_channel)

    def check_health(self) -> None:
        """Sample every running channel; auto-heal unhealthy ones (and hot-swap degraded ones)."""
        now, wall = self.clock.monotonic(), self.clock.time()
        try:
            self.sample_capacity()
        except Exception:
            log.exception("capacity sample failed")
        for ch in self.channels.values():
            if not ch.running:
                continue
            status = self.health.sample(ch, now, wall)
            if not self.auto_heal.enabled:
                continue
            bad, degraded = self.health.streaks(ch.number)
            if status is HealthStatus.UNHEALTHY and bad >= 2:
                reason = "unhealthy: " + "; ".join(self.health.reasons(ch.number))
                if ch.fail_current(reason):  # recovery (error screen + guarded restart) follows
                    self.events.emit("auto_heal", f"channel {ch.number} {reason}; recovering", ch.number,
                                     level=logging.WARNING)
                self.health.reset(ch.number)
            elif status is HealthStatus.DEGRADED and degraded >= 5 and self.auto_heal.hot_swap_enabled:
                self.request_channel_restart(ch.number, source="auto_heal", reason="degraded", hot=True)
                self.health.reset(ch.number)

    def health_report(self, channel_id: int, history_limit: int = 300, viewers: int | None = None
                      ) -> dict[str, Any]:
        ch = self.channel(channel_id)
        if viewers is None:
            viewers = self.sessions.live_count(ch.number)
        return self.health.report(ch, viewers, self.breakers[ch.number].snapshot().to_dict(),
                                  self.clock.monotonic(), history_limit)
