"""The embedded default: demo channels built from FFmpeg's own generators.

With no configured channels, the server makes a few short clips once in the data dir
(test patterns and tones with the channel name, program title and a running time code
burned in) and serves three channels from them, so a new user sees real video at once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from ..config import ChannelConfig
from ..ffmpeg.command import drawclock, drawtext

log = logging.getLogger("exstreamtv.demo")

DEMO_VERSION = 1


@dataclass(frozen=True)
class DemoClip:
    filename: str
    title: str
    video: str  # lavfi source
    audio: str
    seconds: float


@dataclass(frozen=True)
class DemoChannel:
    number: int
    name: str
    group: str
    clips: tuple[DemoClip, ...]


def demo_channels(size: str = "640x360", rate: int = 30) -> tuple[DemoChannel, ...]:
    s, r = size, rate
    return (
        DemoChannel(1, "EXStreamTV Bars", "Demo", (
            DemoClip("bars-1.mkv", "Colour Bars", f"smptehdbars=s={s}:r={r}", "sine=f=1000:sample_rate=48000", 30),
            DemoClip("bars-2.mkv", "Test Card", f"testsrc2=s={s}:r={r}", "sine=f=440:sample_rate=48000", 45),
        )),
        DemoChannel(2, "EXStreamTV Patterns", "Demo", (
            DemoClip("patterns-1.mkv", "Spectrum", f"rgbtestsrc=s={s}:r={r}", "sine=f=660:sample_rate=48000", 40),
            DemoClip("patterns-2.mkv", "Gradient", f"gradients=s={s}:r={r}:speed=0.02",
                     "sine=f=330:sample_rate=48000", 35),
        )),
        DemoChannel(3, "EXStreamTV Life", "Demo", (
            DemoClip("life-1.mkv", "Game of Life", f"life=s={s}:r={r}:mold=10:ratio=0.1:death_color=#101030:"
                     "life_color=#40c0ff", "sine=f=220:sample_rate=48000", 30),
            DemoClip("life-2.mkv", "Cellular", f"cellauto=s={s}:r={r}:rule=110", "sine=f=550:sample_rate=48000", 30),
        )),
    )


RunFFmpeg = Callable[[list[str]], Awaitable[tuple[int, str]]]


def clip_command(ffmpeg: str, ch: DemoChannel, clip: DemoClip, out: Path, textdir: Path) -> list[str]:
    name_file = textdir / f"{out.stem}-name.txt"
    title_file = textdir / f"{out.stem}-title.txt"
    name_file.write_text(f"{ch.number}  {ch.name}")
    title_file.write_text(clip.title)
    vf = ",".join([
        drawtext(name_file, 34, "white", "24", "20", box=True),
        drawtext(title_file, 26, "yellow", "24", "h-60", box=True),
        drawclock(30, "white", "w-tw-24", "20"),
    ])
    return [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"{clip.video},{vf}", "-f", "lavfi", "-i", clip.audio,
            "-t", str(clip.seconds), "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "60",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-ac", "2",
            "-metadata", f"title={clip.title}", str(out)]


async def ensure_demo_media(ffmpeg: str, data_dir: Path, run: RunFFmpeg) -> list[ChannelConfig]:
    """Create the demo clips once (skipped when present) and return their channel configs."""
    root = data_dir / "demo" / f"v{DEMO_VERSION}"
    root.mkdir(parents=True, exist_ok=True)
    textdir = root / "text"
    textdir.mkdir(exist_ok=True)
    channels = demo_channels()
    jobs = []
    for ch in channels:
        for clip in ch.clips:
            out = root / clip.filename
            if not out.exists() or out.stat().st_size == 0:
                jobs.append((ch, clip, out))
    if jobs:
        log.info("creating %d demo clips in %s (once)", len(jobs), root)
        sem = asyncio.Semaphore(2)

        async def make(ch: DemoChannel, clip: DemoClip, out: Path) -> None:
            tmp = out.with_name(out.stem + ".part.mkv")
            async with sem:
                rc, err = await run(clip_command(ffmpeg, ch, clip, tmp, textdir))
            if rc != 0:
                tmp.unlink(missing_ok=True)
                raise RuntimeError(f"could not create demo clip {out.name}: {err.strip()[-300:]}")
            tmp.replace(out)

        await asyncio.gather(*(make(*j) for j in jobs))
    return [ChannelConfig(number=ch.number, name=ch.name, group=ch.group,
                          lineup=[str(root / c.filename) for c in ch.clips]) for ch in channels]
