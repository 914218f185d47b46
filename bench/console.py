"""Console benchmark against a live engine: 20 channels and N sessions (default 500).

A real ``Engine`` (its channels, pool, health, events, loop-lag monitor) with synthetic viewer
sessions whose byte counts change every second, read by the console through the same
``LocalControl`` as in production. Prints the time per refresh (snapshot -> all panels
updated and rendered) and the CPU the console uses at one refresh per second.
Target: a few ms per refresh, the same at 500 and 5,000 sessions.

    .venv/bin/python bench/console.py [--seconds 20] [--size 160x48] [--sessions 500,5000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import SMALL_PROFILE, make_test_clip

from exstreamtv.engine.config import parse_config
from exstreamtv.engine.local_control import LocalControl
from exstreamtv.engine.engine import Engine
from exstreamtv.tui.app import ConsoleApp


async def run(seconds: float, size: tuple[int, int], sessions: int, clip: Path) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="exstv-console-bench-"))
    chans = "".join(f"  - number: {n}\n    name: Bench {n:02d}\n    lineup: [{clip}]\n" for n in range(1, 21))
    cfg = parse_config(SMALL_PROFILE + f"session_manager:\n  max_sessions_per_channel: {sessions}\n  max_sessions_per_address: {sessions * 20}\n"
                       "channels:\n" + chans, "<bench>", env={})
    engine = Engine(cfg, tmp / "data")
    await engine.start()
    try:
        made = [engine.sessions.create(1 + k % 20, f"10.1.{k // 250}.{k % 250}:{40000 + k}", "bench")
                for k in range(sessions)]

        async def traffic() -> None:
            k = 0
            while True:
                k += 1
                for i, s in enumerate(made):
                    engine.sessions.sent(s, 300_000 + (k * 7919 + i) % 50_000)
                await asyncio.sleep(1)

        feeder = asyncio.ensure_future(traffic())
        app = ConsoleApp(control=LocalControl(engine, ["http://127.0.0.1:8411"]), refresh_seconds=3600)
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.5)
            times, sync = [], []
            cpu0, t0 = time.process_time(), time.monotonic()
            end = t0 + seconds
            while time.monotonic() < end:
                start = time.perf_counter()
                app.refresh_panels()
                sync.append(time.perf_counter() - start)
                await pilot.pause()  # let Textual lay out and render the update
                times.append(time.perf_counter() - start)
                await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - start)))
            cpu = time.process_time() - cpu0
            wall = time.monotonic() - t0
            lags = sorted(lag for t, lag in engine.loop_lag.samples if t >= t0)
        feeder.cancel()
        print(f"{len(times)} refreshes of 20 channels / {sessions} sessions (live engine) at {size[0]}x{size[1]}: "
              f"snapshot + panel updates median {statistics.median(sync) * 1000:.1f} ms (max {max(sync) * 1000:.1f}), "
              f"until painted median {statistics.median(times) * 1000:.1f} ms (max {max(times) * 1000:.1f}); "
              f"loop lag p99 {lags[int(0.99 * (len(lags) - 1))] * 1000:.1f} ms, max {lags[-1] * 1000:.1f} ms; "
              f"process CPU {cpu / wall * 100:.1f}% of one core at 1 refresh/s (console + engine + session feeder)",
              flush=True)
    finally:
        await engine.stop()


async def main(a: argparse.Namespace) -> None:
    clip = make_test_clip(Path(tempfile.mkdtemp(prefix="exstv-console-clip-")) / "clip.mp4", 5)
    w, h = (int(x) for x in a.size.split("x"))
    for n in (int(x) for x in a.sessions.split(",")):
        await run(a.seconds, (w, h), n, clip)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--size", default="160x48")
    p.add_argument("--sessions", default="500,5000")
    asyncio.run(main(p.parse_args()))
