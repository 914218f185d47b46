"""Progress of the background media probe: files done of total, rate, ETA, per channel."""

from __future__ import annotations

from typing import Any, Iterator

from ..clock import Clock
from .media import MediaInfo


class ScanProgress:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.total = 0
        self.done = 0
        self.failed = 0
        self.started_at = clock.monotonic()
        self.finished_at: float | None = None
        self.pending: list[tuple[int, list[str], list[str], dict[str, MediaInfo]]] = []

    def add(self, channel: int, files: list[str], todo: list[str], infos: dict[str, MediaInfo]) -> None:
        self.pending.append((channel, files, todo, infos))
        self.total += len(todo)

    def take(self) -> Iterator[tuple[int, list[str], list[str], dict[str, MediaInfo]]]:
        """Channels with the fewest files to probe first: most channels are on air soonest."""
        self.pending.sort(key=lambda p: len(p[2]))
        while self.pending:
            yield self.pending.pop(0)

    @property
    def active(self) -> bool:
        return self.total > 0 and self.finished_at is None

    def rate(self, now: float) -> float:
        span = (self.finished_at or now) - self.started_at
        return self.done / span if span > 0 else 0.0

    def eta(self, now: float) -> float | None:
        r = self.rate(now)
        return (self.total - self.done) / r if r > 0 and self.active else None

    def describe(self, now: float) -> str:
        eta = self.eta(now)
        return (f"{self.done}/{self.total} files ({self.rate(now):.1f}/s, {self.failed} unplayable)"
                + (f", about {eta:.0f}s left" if eta is not None else ""))

    def snapshot(self) -> dict[str, Any]:
        now = self.clock.monotonic()
        eta = self.eta(now)
        return {"active": self.active, "total": self.total, "done": self.done, "failed": self.failed,
                "rate_per_second": round(self.rate(now), 2), "eta_seconds": None if eta is None else round(eta, 1)}
