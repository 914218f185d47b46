"""Cost per channel: how many channels hold real time on this machine when they encode, when
they copy a source that already fits, and when they air from the normalised cache.

Channels are started one by one (copy and cache: five at a time) with one viewer each; after
each step every viewer is watched for a while and the step holds when all of them received
media at real time. Prints the last step that held per mode, the server's CPU per copied
channel (server process and FFmpeg), and what a viewer saw when the CPU guard refused a new
encoding channel. Runs at the default output profile (1280x720, 30 fps, veryfast).

    .venv/bin/python bench/channels.py [--max-encode 8] [--max-copy 60] [--watch 12]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from common import ServerProcess, ViewerStats, raise_fd_limit, viewer

from exstreamtv.engine.ffmpeg.binary import find_ffmpeg


def make_sources(root: Path) -> tuple[Path, Path]:
    ff = find_ffmpeg().path
    enc = root / "needs-encode.mkv"  # MPEG-4 Part 2: never copied
    fit = root / "fits.mp4"  # H.264 720p30 yuv420p, keyframes every 2 s, AAC 48 kHz stereo: copied
    src = ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30", "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000",
           "-t", "120"]
    subprocess.run([ff, "-v", "error", "-y", *src, "-c:v", "mpeg4", "-q:v", "5", "-c:a", "aac", "-ac", "2", str(enc)],
                   check=True)
    subprocess.run([ff, "-v", "error", "-y", *src, "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3000k", "-g", "60",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-ar", "48000", str(fit)], check=True)
    return enc, fit


def config(channels: int, source: Path, cache: bool = False, guard: bool = False) -> str:
    lines = ["process_pool:", f"  cpu_guard: {'true' if guard else 'false'}", "  max_processes: 200",
             "streaming:", "  channel_grace_seconds: 600", "session_manager:", "  max_sessions_per_channel: 10",
             "channels:"]
    for n in range(1, channels + 1):
        lines.append(f"  - {{number: {n}, name: Ch {n}, lineup: [{source}], cache: {'true' if cache else 'false'}}}")
    return "\n".join(lines) + "\n"


async def watch(port: int, channels: list[int], seconds: float) -> list[ViewerStats]:
    stats = [ViewerStats() for _ in channels]
    await asyncio.gather(*(viewer(port, f"/stream/channels/{n}.ts", seconds, st) for n, st in zip(channels, stats)))
    return stats


def real_time(server: ServerProcess, channels: list[int], stats: list[ViewerStats], seconds: float) -> tuple[int, str]:
    """Channels at real time: the engine's own view (output not behind the clock, media buffered
    ahead) and the viewer's (bytes kept coming to the end)."""
    ok, worst = 0, ""
    for n, st in zip(channels, stats):
        h = server.api(f"/api/ai/channels/{n}/health")
        alive = st.error is None and st.last_byte_at is not None and st.first_byte_at is not None \
            and st.last_byte_at - st.first_byte_at > seconds - 2
        if alive and h["lag_seconds"] < 1.0 and h.get("buffer_seconds", 0) >= 0.5:
            ok += 1
        else:
            worst = f"ch {n}: lag {h['lag_seconds']:.1f}s, buffer {h.get('buffer_seconds', 0):.1f}s, speed " \
                    f"{h['current_speed']:.2f}"
    return ok, worst


async def ramp(server: ServerProcess, total: int, step: int, seconds: float, label: str) -> int:
    held = 0
    for k in range(step, total + 1, step):
        chans = list(range(1, k + 1))
        stats = await watch(server.port, chans, seconds)
        ok, worst = real_time(server, chans, stats, seconds)
        print(f"  {label}: {k} channel(s): {ok} at real time" + (f" ({worst})" if worst else ""))
        if ok < k:
            break
        held = k
    return held


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-encode", type=int, default=8)
    ap.add_argument("--max-copy", type=int, default=60)
    ap.add_argument("--watch", type=float, default=12.0)
    args = ap.parse_args()
    raise_fd_limit()
    root = Path(tempfile.mkdtemp(prefix="exstv-channels-"))
    enc, fit = make_sources(root)
    results = {}
    # encoding
    server = ServerProcess(config(args.max_encode, enc))
    server.wait_ready()
    results["encode"] = asyncio.run(ramp(server, args.max_encode, 1, args.watch, "encode"))
    server.stop()
    # copying: and what a copied channel costs
    server = ServerProcess(config(args.max_copy, fit))
    server.wait_ready()
    results["copy"] = asyncio.run(ramp(server, args.max_copy, 5, args.watch, "copy"))
    server.stop()
    # the cost of one copied channel: a fresh server running exactly n of them (the ramp's server
    # keeps every channel it started running for the grace period, so its CPU is not per n)
    n = max(5, min(results["copy"] or 5, 20))
    server = ServerProcess(config(n, fit))
    server.wait_ready()
    asyncio.run(watch(server.port, list(range(1, n + 1)), 8.0))  # all running, past their start
    c0, f0, t0 = server.cpu_seconds(), server.ffmpeg_cpu_seconds(), time.monotonic()
    asyncio.run(watch(server.port, list(range(1, n + 1)), 20.0))
    wall = time.monotonic() - t0
    own = (server.cpu_seconds() - c0) / wall / n * 100
    ff = (server.ffmpeg_cpu_seconds() - f0) / wall / n * 100
    per = own + ff
    modes = {httpx.get(f"{server.base}/api/ai/channels/{k}/health", timeout=5).json().get("transcode")
             for k in range(1, n + 1)}
    print(f"  copy: {n} channels for 20 s cost {per:.2f}% of a core each (server {own:.2f}% + FFmpeg {ff:.2f}%); "
          f"modes {sorted(map(str, modes))}")
    server.stop()
    # the normalised cache: one source, normalised once, then copied by every channel
    server = ServerProcess(config(args.max_copy, enc, cache=True))
    server.wait_ready()
    t = time.monotonic()
    while server.api("/api/cache")["cache"]["items"] < 1:
        time.sleep(1)
    print(f"  cache: the source was normalised in the background in {time.monotonic() - t:.0f}s")
    results["cache"] = asyncio.run(ramp(server, args.max_copy, 5, args.watch, "cache"))
    print(f"  cache: {server.api('/api/cache')['cache']}")
    server.stop()
    # the CPU guard: encoding channels until one is refused; what its viewer gets
    server = ServerProcess(config(args.max_encode, enc, guard=True))
    server.wait_ready()
    refused = None
    for k in range(1, args.max_encode + 1):
        asyncio.run(watch(server.port, list(range(1, k + 1)), 8.0))
        events = server.api("/api/events")["events"]
        hit = [e for e in events if e["kind"] == "capacity_refused"]
        if hit:
            refused = (k, hit[0]["message"])
            break
    if refused:
        n, msg = refused
        ch = server.api(f"/api/channels/{n}")
        print(f"  guard: channel {n} refused: {msg}; its viewer got {ch['on_air']} "
              f"(state {ch['state']}) while channels 1-{n - 1} kept playing")
        est = server.api("/api/pool")["capacity_estimate"]
        print(f"  guard: estimate then: {est['encode_cpu_percent']:.0f}% of a core per encode, "
              f"{est['copy_cpu_percent']:.1f}% per copy, +{est['more_copying_channels']} copy channels fit")
    else:
        print(f"  guard: no refusal up to {args.max_encode} encoding channels")
    server.stop()
    print(f"held real time: encode {results['encode']}, copy {results['copy']}, cache {results['cache']} channel(s)")


if __name__ == "__main__":
    main()
