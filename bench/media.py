"""Messy-library benchmark: a channel per kind of everyday file, watched for a while.

Generates small files (320x180 sources where possible): sparse-keyframe TS recording, 4:3
DVD MPEG-2 with AC-3 5.1, anamorphic 16:9, phone clip with rotation, music with cover art,
plain mp3, HEVC 10-bit, VP9/Opus WebM, 60 fps, VFR, portrait, two audio tracks, odd file names,
an incomplete download (shorter than its header says) and a lineup with a deleted file. Each
channel gets one viewer for ``--seconds``; printed per case: seconds of error screen (magenta)
and seconds without picture per 10 minutes of air, pipeline failures and skipped files.
Then start-up with ``--files`` unprobed files: time to serving and to all channels available.

    .venv/bin/python bench/media.py [--seconds 40] [--files 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from common import ROOT, SMALL_PROFILE, ServerProcess

sys.path.insert(0, str(ROOT))
from exstreamtv.engine.ffmpeg.binary import find_ffmpeg  # noqa: E402
from tests.frames import classify_frames  # noqa: E402

FF = find_ffmpeg().path
MAGENTA = 'error_screen:\n  background_color: "#ff00ff"\n  visual_mode: slate\n'


def ff(*args: str) -> None:
    subprocess.run([FF, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=300)


def src(v: str = "testsrc2=s=320x180:r=25", a: str = "sine=f=440", t: float = 12) -> list[str]:
    return ["-f", "lavfi", "-i", v, "-f", "lavfi", "-i", a, "-t", str(t)]


def make_cases(d: Path) -> dict[str, list[Path]]:
    c: dict[str, list[Path]] = {}
    p = d / "recording.ts"
    ff(*src(t=20), "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-c:a", "aac", "-f", "mpegts", str(p))
    c["sparse-keyframe TS"] = [p]
    p = d / "dvd.mpg"
    ff(*src("testsrc2=s=720x480:r=25"), "-vf", "setsar=8/9", "-c:v", "mpeg2video", "-c:a", "ac3", "-ac", "6", str(p))
    c["DVD MPEG-2 + AC-3 5.1"] = [p]
    p = d / "anamorphic.mkv"
    ff(*src("testsrc2=s=720x480:r=25"), "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast",
       "-c:a", "aac", str(p))
    c["anamorphic 16:9"] = [p]
    land = d / "land.mp4"
    ff(*src(), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(land))
    p = d / "phone.mp4"
    ff("-display_rotation:v:0", "90", "-i", str(land), "-c", "copy", str(p))
    c["phone clip, rotated"] = [p]
    cover = d / "cover.jpg"
    ff("-f", "lavfi", "-i", "color=c=orange:s=300x300", "-frames:v", "1", str(cover))
    p = d / "song with cover.mp3"
    ff("-f", "lavfi", "-i", "sine=f=330", "-i", str(cover), "-t", "15", "-map", "0", "-map", "1", "-c:a",
       "libmp3lame", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(p))
    c["music with cover art"] = [p]
    p = d / "plain.mp3"
    ff("-f", "lavfi", "-i", "sine=f=550", "-t", "15", "-c:a", "libmp3lame", "-b:a", "128k", str(p))
    c["mp3, no picture"] = [p]
    p = d / "hevc10.mkv"
    ff(*src(), "-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-c:a", "aac", str(p))
    c["HEVC 10-bit"] = [p]
    p = d / "vp9.webm"
    ff(*src(), "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", str(p))
    c["VP9 + Opus WebM"] = [p]
    p = d / "sixty.mp4"
    ff(*src("testsrc2=s=320x180:r=60"), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(p))
    c["60 fps"] = [p]
    p = d / "vfr.mkv"
    ff(*src(), "-vf", "setpts='PTS+0.02*sin(N)/TB'", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast",
       "-c:a", "aac", str(p))
    c["VFR"] = [p]
    p = d / "portrait.mp4"
    ff(*src("testsrc2=s=180x320:r=30"), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(p))
    c["portrait"] = [p]
    p = d / "two audio.mkv"
    ff(*src(), "-f", "lavfi", "-i", "sine=f=880", "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264",
       "-preset", "ultrafast", "-c:a", "aac", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1",
       "language=fra", "-t", "12", str(p))
    c["two audio tracks"] = [p]
    p = d / "Odd [name] 'quote' ; $HOME & é.mp4"
    ff(*src(), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(p))
    c["odd file name"] = [p]
    full = d / "download.ts"
    ff(*src(t=16), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-f", "mpegts", str(full))
    c["incomplete download"] = [full]
    keep = [d / f"lineup{k}.mp4" for k in range(3)]
    for k, f in enumerate(keep):
        ff(*src(a=f"sine=f={300 + 200 * k}", t=8), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(f))
    c["lineup with a deleted file"] = keep
    return c


async def watch(base: str, n: int, seconds: float, out: Path) -> None:
    async with httpx.AsyncClient(timeout=30) as c:
        async with c.stream("GET", f"{base}/stream/channels/{n}.ts") as r:
            with out.open("wb") as f:
                end = time.monotonic() + seconds
                async for chunk in r.aiter_raw():
                    f.write(chunk)
                    if time.monotonic() > end:
                        break


def picture_gaps(capture: Path) -> tuple[float, float, float]:
    """(seconds of error screen, seconds without picture, seconds captured) from decoded frames."""
    frames = classify_frames(FF, capture)
    if not frames:
        return 0.0, 0.0, 0.0
    pts = [t for t, _ in frames]
    span = max(pts) - min(pts)
    err = sum(1 for _, k in frames if k == "E") / 15.0
    gaps = sum(max(0.0, b - a - 0.2) for a, b in zip(pts, pts[1:]))
    return err, gaps, span


async def run_cases(seconds: float) -> None:
    d = Path(tempfile.mkdtemp(prefix="exstv-media-"))
    cases = make_cases(d)
    names = list(cases)
    chans = "".join(f"  - number: {i + 1}\n    name: \"{n}\"\n    lineup: [{', '.join(repr(str(p)) for p in cases[n])}]\n"
                    for i, n in enumerate(names))
    srv = ServerProcess(SMALL_PROFILE.replace("fps: 15", "fps: 15") + MAGENTA + "channels:\n" + chans)
    try:
        srv.wait_ready()
        # the incomplete download: cut after the probe, as a download manager would leave it
        dl = cases["incomplete download"][0]
        dl.write_bytes(dl.read_bytes()[: dl.stat().st_size // 2])
        caps = [d / f"cap{i + 1}.ts" for i in range(len(names))]
        tasks = [asyncio.ensure_future(watch(srv.base, i + 1, seconds, caps[i])) for i in range(len(names))]
        await asyncio.sleep(3)
        cases["lineup with a deleted file"][1].unlink()
        await asyncio.gather(*tasks, return_exceptions=True)
        events = httpx.get(srv.base + "/api/events?limit=2000", timeout=10).json()
        events = events.get("events", events) if isinstance(events, dict) else events
        print(f"{'case':30} {'error screen /10min':>20} {'no picture /10min':>18} {'failures':>9} {'skipped':>8}")
        for i, name in enumerate(names):
            err, gap, span = picture_gaps(caps[i])
            scale = 600 / span if span else 0
            fails = sum(1 for e in events if e.get("kind") == "pipeline_failed" and e.get("channel_id") == i + 1)
            skipped = sum(1 for e in events if e.get("kind") in ("media_problem", "media_short")
                          and e.get("channel_id") == i + 1)
            print(f"{name:30} {err * scale:19.1f}s {gap * scale:17.1f}s {fails:9} {skipped:8}   ({span:.0f}s captured)")
    finally:
        srv.stop()


def run_startup(files: int) -> None:
    d = Path(tempfile.mkdtemp(prefix="exstv-lib-"))
    clip = d / "clip.mp4"
    ff(*src(t=2), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip))
    lib = d / "lib"
    lib.mkdir()
    for k in range(files):
        os.link(clip, lib / f"clip{k:05d}.mp4")
    small = d / "small.mp4"
    ff(*src(t=5), "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(small))
    cfg = (SMALL_PROFILE + f"channels:\n  - number: 1\n    name: Small\n    lineup: [{small}]\n"
           f"  - number: 2\n    name: Library\n    lineup: [{lib}]\n")
    t0 = time.monotonic()
    srv = ServerProcess(cfg)
    try:
        srv.wait_ready()
        serving = time.monotonic() - t0
        small_ready = None
        while True:
            body = srv.api("/api/channels")
            states = {c["number"]: c["state"] for c in body["channels"]}
            if small_ready is None and states[1] != "scanning":
                small_ready = time.monotonic() - t0
            if states[2] != "scanning":
                break
            time.sleep(0.5)
        done = time.monotonic() - t0
        print(f"start-up with {files} unprobed files: serving after {serving:.2f}s, the small channel available after "
              f"{small_ready:.2f}s, all channels after {done:.1f}s ({body['scan']['rate_per_second']:.1f} probes/s)")
        srv.stop()
        t0 = time.monotonic()
        srv = ServerProcess(cfg, data_dir=srv.data_dir)
        srv.wait_ready()
        states = {c["number"]: c["state"] for c in srv.api("/api/channels")["channels"]}
        print(f"restart with the probe cache: serving after {time.monotonic() - t0:.2f}s, library channel "
              f"'{states[2]}'")
    finally:
        srv.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=40)
    p.add_argument("--files", type=int, default=2000)
    a = p.parse_args()
    asyncio.run(run_cases(a.seconds))
    run_startup(a.files)


if __name__ == "__main__":
    main()
