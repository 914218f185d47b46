"""Tell error-screen frames from programme frames in a capture (tests and bench use a magenta error screen)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def classify_frames(ffmpeg: str, capture: Path) -> list[tuple[float, str]]:
    """(pts seconds, 'E' for a mostly magenta frame, else 'P') for every decoded video frame."""
    out = subprocess.run([ffmpeg, "-v", "info", "-copyts", "-i", str(capture), "-vf", "showinfo,scale=16:9",
                          "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, timeout=300)
    pts = [float(m) for m in re.findall(rb"pts_time:([0-9.]+)", out.stderr)]
    size = 16 * 9 * 3
    frames = []
    for n, i in enumerate(range(0, len(out.stdout) - size + 1, size)):
        px = out.stdout[i:i + size]
        magenta = sum(1 for j in range(0, size, 3) if px[j] > 200 and px[j + 1] < 60 and px[j + 2] > 200)
        frames.append((pts[n] if n < len(pts) else float("nan"), "E" if magenta > 0.5 * 16 * 9 else "P"))
    return frames
