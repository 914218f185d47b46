"""Find the FFmpeg binary: ``ffmpeg`` on PATH, else ``ffmpeg.path`` from config, else imageio-ffmpeg's.

The imageio-ffmpeg wheel ships a static FFmpeg (with libx264, drawtext, lavfi) so a plain
``pip install`` brings everything; it has no ffprobe, so probing uses ``ffmpeg -i``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


class FFmpegNotFound(Exception):
    pass


@dataclass(frozen=True)
class FFmpegBinary:
    path: str
    version: str
    origin: str  # "PATH", "config", "imageio-ffmpeg"


def _version(path: str) -> str:
    out = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True, timeout=15)
    if out.returncode != 0:
        raise FFmpegNotFound(f"{path} -version failed: {out.stderr.strip()[:200]}")
    first = out.stdout.splitlines()[0] if out.stdout else ""
    parts = first.split()
    return parts[2] if len(parts) > 2 and parts[0] == "ffmpeg" else first


def find_ffmpeg(configured: str | None = None) -> FFmpegBinary:
    candidates: list[tuple[str, str]] = []
    on_path = shutil.which("ffmpeg")
    if on_path:
        candidates.append((on_path, "PATH"))
    if configured:
        candidates.append((os.path.expanduser(configured), "config"))
    try:
        import imageio_ffmpeg

        candidates.append((imageio_ffmpeg.get_ffmpeg_exe(), "imageio-ffmpeg"))
    except Exception:  # no wheel binary for this platform
        pass
    errors = []
    for path, origin in candidates:
        try:
            return FFmpegBinary(path=path, version=_version(path), origin=origin)
        except (OSError, subprocess.SubprocessError, FFmpegNotFound) as exc:
            errors.append(f"{origin} {path}: {exc}")
    detail = "; ".join(errors) or "nothing on PATH, no ffmpeg.path, no imageio-ffmpeg binary"
    raise FFmpegNotFound(f"no working FFmpeg found ({detail}). Install ffmpeg or set ffmpeg.path in the config.")
