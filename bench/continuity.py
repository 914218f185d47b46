"""Continuity benchmark: what a viewer receives across every kind of splice, read from the packets.

Two channels, x264 with B-frames, one viewer each recording everything it receives:
channel 1 plays short programmes (a boundary every few seconds), channel 2 one long
programme (so every kill hits the FFmpeg whose output is on air). During the capture the
bench SIGKILLs each channel's running FFmpeg ``--kills`` times, asks for ``--swaps`` hot swaps (restart
through the guards, which swaps at the new pipeline's first keyframe) and puts the
operator slate on and off ``--slates`` times. Then it reports, from the captured packets:

- the largest audio gap and overlap between consecutive AAC frames (a splice must stay
  under one frame: 21.3 ms at 48 kHz), and every audio glitch with where it was;
- video presentation steps above 1.5 frames, repeated presentation times, DTS going back;
- PCR steps back and the largest PCR jump, continuity-counter errors;
- FFmpeg's decode errors on the capture;
- from each kill to the first error-screen frame reaching the viewer (target: under 1 s).

    .venv/bin/python bench/continuity.py [--kills 6 --swaps 4 --slates 3]
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

from common import ServerProcess, raise_fd_limit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from exstreamtv.engine.stream.continuity import continuity_report  # noqa: E402
from exstreamtv.engine.ffmpeg.binary import find_ffmpeg  # noqa: E402
from exstreamtv.engine.stream.mpegts import TS, parse_header, pes_timestamps  # noqa: E402
from tests.frames import classify_frames  # noqa: E402

CONFIG = """
ffmpeg:
  width: 320
  height: 180
  fps: 25
  preset: veryfast
  video_bitrate_kbps: 500
  keyframe_interval_seconds: 1.0
restart_guard:
  channel_cooldown_seconds: 0
  max_restarts: 1000
circuit_breaker:
  failure_threshold: 1000
ai_auto_heal:
  hot_swap_enabled: true
error_screen:
  background_color: "#ff00ff"
channels:
  - number: 1
    name: Short programmes
    lineup: [{clips}]
  - number: 2
    name: One long programme
    lineup: [{long}]
"""


def make_clip(path: Path, seconds: float, rate: int, tone: int) -> Path:
    """A programme with its own timestamps, B-frames and a sample rate FFmpeg must resample."""
    subprocess.run([find_ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s=320x180:r={rate}",
                    "-f", "lavfi", "-i", f"sine=f={tone}:sample_rate=44100", "-t", f"{seconds}",
                    "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(path)], check=True)
    return path


class Capture:
    """One viewer recording what it receives, with arrival times."""

    def __init__(self, base: str, number: int) -> None:
        self.base, self.number = base, number
        self.arrivals: list[tuple[float, int, bytes]] = []
        self.actions: list[tuple[float, str]] = []
        self.stop = asyncio.Event()
        self.task = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        async with httpx.AsyncClient(timeout=None) as c:
            async with c.stream("GET", f"{self.base}/stream/channels/{self.number}.ts") as r:
                off = 0
                async for chunk in r.aiter_raw():
                    self.arrivals.append((time.monotonic(), off, chunk))
                    off += len(chunk)
                    if self.stop.is_set():
                        return

    async def act(self, api: httpx.AsyncClient, plan: list[str], interval: float) -> None:
        for what in plan:
            for _ in range(50):  # act on a programme that is on air, not on a recovery in progress
                ch = (await api.get(f"/api/channels/{self.number}")).json()
                if ch["state"] == "playing" and ch["pid"]:
                    break
                await asyncio.sleep(0.2)
            t = time.monotonic()
            if what == "kill":
                os.kill(ch["pid"], signal.SIGKILL)
            elif what == "swap":
                await api.post(f"/api/channels/{self.number}/restart", json={})
            else:
                await api.post(f"/api/channels/{self.number}/error-screen", json={"seconds": 2.5, "title": "Slate"})
            self.actions.append((t, what))
            await asyncio.sleep(interval)


def report(cap: Capture, title: str, folder: Path, ffmpeg: str) -> None:
    data = b"".join(c for _, _, c in cap.arrivals)
    path = folder / f"capture{cap.number}.ts"
    path.write_bytes(data)
    rep = continuity_report(data)
    dec = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    errors = [ln for ln in dec.stderr.splitlines() if ln.strip()]
    # when did each video frame reach the viewer, and was it the (magenta) error screen?
    arrival_of_pts: dict[int, float] = {}
    for t, off, chunk in cap.arrivals:
        for k in range((-off) % TS, len(chunk) - TS + 1, TS):
            p = chunk[k:k + TS]
            info = parse_header(p)
            if info.pid == 0x100 and info.pusi:
                pts = pes_timestamps(p, info.payload_start)[0]
                if pts is not None:
                    arrival_of_pts.setdefault(round(pts / 90), t)
    timed = sorted((arrival_of_pts[round(pt * 1000)], kind) for pt, kind in classify_frames(ffmpeg, path)
                   if pt == pt and round(pt * 1000) in arrival_of_pts)
    to_error = []
    hidden = 0
    for i, (t_kill, what) in enumerate(cap.actions):
        if what != "kill":
            continue
        until = min(t_kill + 8, cap.actions[i + 1][0] if i + 1 < len(cap.actions) else t_kill + 8)
        first_e = next((t for t, k in timed if t_kill <= t <= until and k == "E"), None)  # before the next action
        if first_e is None:
            hidden += 1  # restarted before what was on air ended: no error screen at all
        else:
            to_error.append(first_e - t_kill)
    s = rep.summary()
    count = {w: sum(1 for _, x in cap.actions if x == w) for w in ("kill", "swap", "slate")}
    print(f"== channel {cap.number}: {title}")
    print(f"capture {len(data) / 1e6:.1f} MB, {s['video_frames']} video frames "
          f"({rep.video_frame * 1000:.0f} ms each), {s['audio_pes']} audio PES; "
          f"{count['kill']} kills, {count['swap']} hot swaps, {count['slate']} slates")
    print(f"audio:  largest gap {s['max_audio_gap_ms']} ms, largest overlap {s['max_audio_overlap_ms']} ms, "
          f"{s['audio_glitches']} glitches over 1 ms")
    for g in rep.audio_gaps + rep.audio_overlaps:
        print(f"        at {g.at:9.3f} s: {g.size * 1000:+.1f} ms")
    print(f"video:  largest presentation step {s['max_video_step_frames']} frames, "
          f"{s['video_not_increasing']} repeated, {s['dts_backwards']} DTS backwards")
    for g in rep.video_steps:
        print(f"        at {g.at:9.3f} s: step {g.size * 1000:.0f} ms")
    print(f"PCR:    {s['pcr_backwards']} steps back, largest jump {s['pcr_max_jump_s']} s; "
          f"CC errors {s['cc_errors']}")
    print(f"decode: {len(errors)} error lines" + (f" (first: {errors[0][:120]})" if errors else ""))
    if to_error:
        print(f"kill -> first error-screen frame at the viewer: median {statistics.median(to_error):.2f} s, "
              f"max {max(to_error):.2f} s over {len(to_error)} kills")
    if hidden:
        print(f"{hidden} kill(s) of a programme still reading ahead were hidden: replaced before the programme "
              "on air ended, no error screen")


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    ffmpeg = find_ffmpeg().path
    tmp = Path(tempfile.mkdtemp(prefix="exstv-continuity-"))
    clips = [make_clip(tmp / f"prog{i}.mp4", args.programme_seconds + i * 0.37, 24 + i % 2, 300 + 100 * i)
             for i in range(3)]
    long = make_clip(tmp / "long.mp4", 600, 25, 500)
    server = ServerProcess(CONFIG.format(clips=", ".join(str(c) for c in clips), long=long))
    try:
        server.wait_ready()
        caps = [Capture(server.base, 1), Capture(server.base, 2)]
        await asyncio.sleep(4)
        plan = ["kill"] * args.kills + ["swap"] * args.swaps + ["slate"] * args.slates
        plan = [plan[i] for i in sorted(range(len(plan)), key=lambda i: (i * 7919) % len(plan))]  # interleaved
        async with httpx.AsyncClient(base_url=server.base, timeout=10) as api:
            await asyncio.gather(*(c.act(api, plan, args.interval) for c in caps))
        await asyncio.sleep(args.programme_seconds)  # one more programme boundary after the last action
        for c in caps:
            c.stop.set()
        await asyncio.sleep(1)
        for c in caps:
            c.task.cancel()
    finally:
        server.stop()
    print("Kills of channel 1 often hit the next programme, already being read ahead: it is replaced while the")
    print("programme on air ends (no error screen unless that takes too long); channel 2's kills hit what is on air.")
    report(caps[0], "short programmes (a boundary every few seconds)", tmp, ffmpeg)
    report(caps[1], "one long programme", tmp, ffmpeg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--swaps", type=int, default=4)
    ap.add_argument("--slates", type=int, default=3)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--programme-seconds", type=float, default=7.0)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
