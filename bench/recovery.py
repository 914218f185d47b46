"""Recovery benchmark: SIGKILL a channel's FFmpeg N times while a viewer watches.

For each kill prints the time from the kill to the first error-screen byte at the viewer,
the time to the programme being back, the largest timestamp gap in the captured stream,
and whether the capture decoded cleanly. The error screen is magenta here so frames can
be told apart; the restart cooldown is 0 so kills can follow each other.

    .venv/bin/python bench/recovery.py [--kills 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import SMALL_PROFILE, ServerProcess, make_test_clip, raise_fd_limit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exstreamtv.engine.ffmpeg.binary import find_ffmpeg  # noqa: E402
from exstreamtv.engine.stream.mpegts import TS, parse_header, pes_timestamps  # noqa: E402
from tests.frames import classify_frames  # noqa: E402

CONFIG = SMALL_PROFILE + """
restart_guard:
  channel_cooldown_seconds: 0
  max_restarts: 1000
circuit_breaker:
  failure_threshold: 1000
error_screen:
  background_color: "#ff00ff"
channels:
  - number: 1
    name: Recovery
    lineup: [{clip}]
"""


def classify(ffmpeg: str, data: bytes, folder: Path) -> tuple[list[tuple[float, str]], bool]:
    """Per decoded frame (pts seconds, 'E'/'P'), and whether the capture decoded without errors."""
    f = folder / "cap.ts"
    f.write_bytes(data)
    dec = subprocess.run([ffmpeg, "-v", "error", "-i", str(f), "-f", "null", "-"], capture_output=True, text=True)
    return classify_frames(ffmpeg, f), dec.returncode == 0 and not dec.stderr.strip()


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    ffmpeg = find_ffmpeg().path
    tmp = Path(tempfile.mkdtemp(prefix="exstv-recovery-"))
    clip = make_test_clip(tmp / "clip.mp4", 600)
    server = ServerProcess(CONFIG.format(clip=clip))
    try:
        server.wait_ready()
        # a viewer that records (arrival time, bytes); the video PES arrival times let us find frames
        arrivals: list[tuple[float, int, bytes]] = []
        stop = asyncio.Event()

        async def watch() -> None:
            async with httpx.AsyncClient(timeout=None) as c:
                async with c.stream("GET", server.base + "/stream/channels/1.ts") as r:
                    off = 0
                    async for chunk in r.aiter_raw():
                        arrivals.append((time.monotonic(), off, chunk))
                        off += len(chunk)
                        if stop.is_set():
                            return

        task = asyncio.ensure_future(watch())
        await asyncio.sleep(4)
        kills = []
        for _ in range(args.kills):
            ch = (await asyncio.to_thread(server.api, "/api/channels"))["channels"][0]
            if ch["state"] != "playing" or not ch["pid"]:  # kill the programme on air, not a standby
                await asyncio.sleep(0.2)
                continue
            t_kill = time.monotonic()
            os.kill(ch["pid"], signal.SIGKILL)
            kills.append(t_kill)
            await asyncio.sleep(args.interval)
        stop.set()
        await asyncio.sleep(1)
        task.cancel()
        data = b"".join(c for _, _, c in arrivals)
        frames, clean = classify(ffmpeg, data, tmp)
        # when did the PES of each video timestamp reach the viewer?
        arrival_of_pts: dict[int, float] = {}
        for t, off, chunk in arrivals:
            for k in range((-off) % TS, len(chunk) - TS + 1, TS):
                p = chunk[k:k + TS]
                info = parse_header(p)
                if info.pid == 0x100 and info.pusi:
                    pts = pes_timestamps(p, info.payload_start)[0]
                    if pts is not None:
                        arrival_of_pts.setdefault(round(pts / 90), t)  # key: milliseconds
        timed = [(arrival_of_pts[round(pt * 1000)], kind) for pt, kind in frames
                 if pt == pt and round(pt * 1000) in arrival_of_pts]  # pt == pt: not NaN
        pts_list = [pt for pt, _ in frames]
        gaps = [b - a for a, b in zip(pts_list, pts_list[1:])]
        to_error, to_back = [], []
        for t_kill in kills:
            after = [(t, k) for t, k in timed if t >= t_kill]
            first_e = next((t for t, k in after if k == "E"), None)
            if first_e is None:
                continue
            back = next((t for t, k in after if t > first_e and k == "P"), None)
            to_error.append(first_e - t_kill)
            if back is not None:
                to_back.append(back - t_kill)
        print(f"{len(kills)} kills; capture {len(data) / 1e6:.1f} MB, decoded cleanly: {clean}; "
              f"{len(frames)} frames ({sum(1 for _, k in frames if k == 'E')} error screen), {len(timed)} timed")
        if to_error:
            print(f"kill -> first error-screen frame arrives at the viewer: median {statistics.median(to_error):.2f} s, "
                  f"max {max(to_error):.2f} s ({len(to_error)} kills seen)")
        if to_back:
            print(f"kill -> programme back: median {statistics.median(to_back):.2f} s, max {max(to_back):.2f} s")
        print(f"largest timestamp gap: {max(gaps) if gaps else 0:.3f} s; backwards steps: "
              f"{sum(1 for g in gaps if g < 0)}")
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--interval", type=float, default=6.0, help="seconds between kills")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
