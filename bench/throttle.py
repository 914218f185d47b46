"""Throttle benchmark: for each mode, 20 viewers of one channel for 30 s.

Prints the delivered rate per viewer (min/median/max), its deviation from the target, how
often viewers skipped ahead, and the server's CPU per viewer-second with throttling on vs off.
The channel plays a noisy clip encoded at 3 Mbit/s and the target defaults to 2 Mbit/s,
so the throttler really limits (and the skip-ahead policy shows).

    .venv/bin/python bench/throttle.py [--seconds 30] [--viewers 20] [--target 2000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ServerProcess, ViewerStats, raise_fd_limit, viewer


CONFIG = """
ffmpeg:
  width: 640
  height: 360
  fps: 25
  preset: ultrafast
  video_bitrate_kbps: 3000
session_manager:
  max_sessions_per_address: 1000  # all viewers come from this machine
channels:
  - number: 1
    name: Noise
    lineup: [{clip}]
"""


def noisy_clip(folder: Path) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from exstreamtv.engine.ffmpeg.binary import find_ffmpeg

    clip = folder / "noise.mp4"
    subprocess.run([find_ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=s=640x360:r=25,noise=alls=60:allf=t", "-f", "lavfi", "-i", "sine=f=440", "-t", "120",
                    "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-c:a", "aac", str(clip)], check=True)
    return clip


async def one_mode(mode: str, args: argparse.Namespace, data_dir: Path, clip: Path) -> float:
    server = ServerProcess(CONFIG.format(clip=clip), data_dir=data_dir,
                           env={"EXSTREAMTV_THROTTLE_MODE": mode, "EXSTREAMTV_THROTTLE_BITRATE": str(args.target)})
    try:
        server.wait_ready()
        warm = ViewerStats()
        warm_task = asyncio.ensure_future(viewer(server.port, "/stream/channels/1.ts", 1e9, warm))
        await asyncio.sleep(3)  # channel running before we measure
        cpu0 = server.cpu_seconds()
        stats = [ViewerStats() for _ in range(args.viewers)]
        await asyncio.gather(*(viewer(server.port, "/stream/channels/1.ts", args.seconds, s) for s in stats))
        cpu = server.cpu_seconds() - cpu0
        sessions = server.api("/api/ai/sessions")
        warm_task.cancel()
        rates = []
        for s in stats:
            if s.first_byte_at and s.last_byte_at and s.last_byte_at > s.first_byte_at:
                # the first second is the join burst (GOP cache + lead): measure the steady part
                rates.append(s.bytes * 8 / (s.last_byte_at - s.first_byte_at))
        vs = sum((s.last_byte_at or s.connected_at) - s.connected_at for s in stats)
        med = statistics.median(rates) if rates else 0.0
        skips = sum(x.get("skips", 0) for x in sessions["sessions"])
        dev = (med - args.target) / args.target * 100
        print(f"{mode:9}: rate min {min(rates) / 1e6:.2f} / median {med / 1e6:.2f} / max {max(rates) / 1e6:.2f} "
              f"Mbit/s (target {args.target / 1e6:.2f}, median deviation {dev:+.1f}%), skips {skips}, "
              f"server CPU {cpu / vs * 1000:.2f} ms per viewer-second")
        return cpu / vs
    finally:
        server.stop()


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="exstv-throttle-"))
    clip = noisy_clip(tmp)
    costs = {}
    for mode in ("realtime", "burst", "adaptive", "disabled"):
        costs[mode] = await one_mode(mode, args, tmp / "data", clip)
    on = statistics.mean(costs[m] for m in ("realtime", "burst", "adaptive"))
    print(f"CPU per viewer-second: throttled {on * 1000:.2f} ms vs disabled {costs['disabled'] * 1000:.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--viewers", type=int, default=20)
    p.add_argument("--target", type=int, default=2_000_000)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
