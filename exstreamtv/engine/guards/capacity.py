"""How many more channels fit: per-channel CPU as measured, the machine's headroom, and the
guard that refuses a new encoding channel when the headroom is gone.

Every few seconds (the health loop) the CPU of each running channel's FFmpeg is sampled and
filed under how that channel airs now (``copy`` or ``encode``); the running means are the
cost of one more such channel (before any is measured: an estimate from the output size).
Headroom is what is left of ``cpu_guard_percent`` of all cores after the machine's measured
use. A channel that would start encoding while the headroom is below one encode is refused:
its viewers see the error screen saying the server is at capacity, until room frees up.
"""

from __future__ import annotations

import math
import os
from collections import deque
from typing import Any, Callable


class Capacity:
    def __init__(self, cores: int | None, guard_percent: float, enabled: bool,
                 cpu_percent: Callable[[], float], encode_guess: float) -> None:
        self.cores = cores or os.cpu_count() or 1
        self.guard_percent = guard_percent
        self.enabled = enabled
        self.cpu_percent = cpu_percent  # the machine's use, percent of all cores (0-100)
        self.samples: dict[str, deque[float]] = {"encode": deque(maxlen=120), "copy": deque(maxlen=120)}
        self.guess = {"encode": encode_guess, "copy": 2.0}
        self.machine = 0.0
        self.refused = 0

    def sample(self, per_channel: list[tuple[str, float]]) -> None:
        """``per_channel``: (mode, CPU percent of one core) of each running channel's FFmpeg."""
        self.machine = self.cpu_percent()
        for mode, cpu in per_channel:
            if mode in self.samples and cpu > 0:
                self.samples[mode].append(cpu)

    def cost(self, mode: str) -> float:
        s = self.samples[mode]
        return sum(s) / len(s) if s else self.guess[mode]

    def headroom(self) -> float:
        """Percent of one core still free under the guard (cores x 100 x guard share - use)."""
        return self.cores * self.guard_percent - self.machine * self.cores

    def fits(self, mode: str) -> int:
        return max(0, math.floor(self.headroom() / max(0.1, self.cost(mode))))

    def refuse_encode(self) -> bool:
        if not self.enabled:
            return False
        if self.headroom() < self.cost("encode"):
            self.refused += 1
            return True
        return False

    def snapshot(self) -> dict[str, Any]:
        return {"cores": self.cores, "cpu_percent": round(self.machine, 1), "guard_percent": self.guard_percent,
                "guard_enabled": self.enabled, "headroom_core_percent": round(self.headroom(), 1),
                "encode_cpu_percent": round(self.cost("encode"), 1), "copy_cpu_percent": round(self.cost("copy"), 1),
                "measured": {m: len(s) for m, s in self.samples.items()},
                "more_encoding_channels": self.fits("encode"), "more_copying_channels": self.fits("copy"),
                "refused_encoding_channels": self.refused}
