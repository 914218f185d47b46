"""The per-channel hot path without a server: a copied programme's MPEG-TS (720p30 H.264 at
3 Mbit/s, AAC) through the splicer and the pacer's continuity numbering, as a channel does it.

Prints the splicer's cost per TS packet, the share of a core that is per channel at real time,
and how many items the pacer handles (a PES's continuation packets ride in one item).

    .venv/bin/python bench/splicer.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exstreamtv.engine.ffmpeg.binary import find_ffmpeg  # noqa: E402
from exstreamtv.engine.stream.mpegts import TS, ContinuityCounter  # noqa: E402
from exstreamtv.engine.stream.splicer import Splicer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    ts = Path(tempfile.mkdtemp(prefix="exstv-splice-")) / "copy.ts"
    subprocess.run([find_ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-f",
                    "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", str(args.seconds), "-c:v", "libx264",
                    "-preset", "veryfast", "-b:v", "3000k", "-g", "60", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-ac", "2", "-f", "mpegts", str(ts)], check=True)
    data = ts.read_bytes()
    packets = len(data) // TS
    best, items = float("inf"), 0
    for _ in range(5):
        s, cc = Splicer(), ContinuityCounter()
        t = time.perf_counter()
        out = []
        for i in range(0, len(data), 65536):  # FFmpeg's pipe hands over about this much at a time
            out += s.feed(data[i:i + 65536])
        out += s.end_segment(True)
        for p in out:
            cc.stamp(p.data)
        best, items = min(best, time.perf_counter() - t), len(out)
    print(f"{args.seconds:g} s of copied 720p30 at 3 Mbit/s: {packets} TS packets, {len(data) / 2**20:.1f} MiB")
    print(f"splicer + continuity numbering: {best * 1e6 / packets:.2f} us per packet, "
          f"{best / args.seconds * 100:.2f}% of a core per channel at real time")
    print(f"items handed to the pacer: {items} ({packets / max(1, items):.0f} packets per item)")


if __name__ == "__main__":
    main()
