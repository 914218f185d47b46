"""Console benchmark: the console with 20 channels and 500 sessions (synthetic engine state).

Prints the time per refresh (snapshot -> all panels updated and rendered) and the CPU the
console uses at one refresh per second. Target: under 10% of one core.

    .venv/bin/python bench/console.py [--seconds 20] [--size 160x48]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exstreamtv.tui.app import ConsoleApp  # noqa: E402
from tests.console_fakes import FakeControl, fake_snapshot  # noqa: E402


class ChangingControl(FakeControl):
    """Every snapshot differs a little (rates, durations, bytes), like a live engine."""

    def __init__(self) -> None:
        super().__init__(fake_snapshot(channels=20, sessions=500))
        self.tick = 0

    def snapshot(self, events_since: int = 0):
        self.tick += 1
        for s in self.snap.sessions:
            s["duration_seconds"] += 1
            s["bytes_sent"] += 400_000 + (self.tick * 7919 + hash(s["session_id"])) % 50_000
            s["current_rate_bps"] = 3_000_000 + (self.tick * 104729) % 400_000
        for c in self.snap.channels:
            c["ffmpeg"]["fps"] = 29 + (self.tick + c["number"]) % 3
        self.snap.now += 1
        return super().snapshot(events_since)


async def run(seconds: float, size: tuple[int, int]) -> None:
    app = ConsoleApp(control=ChangingControl(), refresh_seconds=3600)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.5)
        times = []
        cpu0, t0 = time.process_time(), time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            app.refresh_panels()
            await pilot.pause()  # let Textual lay out and render the update
            times.append(time.perf_counter() - start)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - start)))
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
    print(f"{len(times)} refreshes of 20 channels / 500 sessions at {size[0]}x{size[1]}: "
          f"median {statistics.median(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms per refresh; "
          f"console CPU {cpu / wall * 100:.1f}% of one core at 1 refresh/s")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--size", default="160x48")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    asyncio.run(run(a.seconds, (w, h)))
