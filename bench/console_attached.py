"""Attached console benchmark: ``exstreamtv console --connect`` against a server with 20
channels and N sessions (default 500).

The server (a real ``Engine`` and HTTP server on loopback, in this process, with synthetic
viewer sessions whose byte counts change every second) runs ``--seconds`` alone, then the
same time with one attached console in a tmux pane (its own process, 1 refresh/s). Prints
the console's CPU, the server CPU the console adds, and the bytes per second on the wire
(loopback traffic, which here is only the console's: the synthetic sessions stream nothing).
Targets: console under 5% of a core, server under 1% added, per console.

    .venv/bin/python bench/console_attached.py [--seconds 20] [--sessions 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from common import ROOT, SMALL_PROFILE, make_test_clip

from exstreamtv.engine.config import parse_config
from exstreamtv.engine.engine import Engine
from exstreamtv.server.runner import ServerHandle


def lo_bytes() -> int:
    c = psutil.net_io_counters(pernic=True).get("lo")
    return c.bytes_sent if c else 0


async def measure(seconds: float) -> tuple[float, int]:
    me = psutil.Process()
    cpu0, lo0, t0 = sum(me.cpu_times()[:2]), lo_bytes(), time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    return (sum(me.cpu_times()[:2]) - cpu0) / wall, int((lo_bytes() - lo0) / wall)


async def run(a: argparse.Namespace) -> None:
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install tmux)")
    tmp = Path(tempfile.mkdtemp(prefix="exstv-attached-bench-"))
    clip = make_test_clip(tmp / "clip.mp4", 5)
    chans = "".join(f"  - number: {n}\n    name: Bench {n:02d}\n    lineup: [{clip}]\n" for n in range(1, 21))
    cfg = parse_config(SMALL_PROFILE + f"session_manager:\n  max_sessions_per_channel: {a.sessions}\n"
                       f"  max_sessions_per_address: {a.sessions}\nchannels:\n" + chans, "<bench>", env={})
    engine = Engine(cfg, tmp / "data")
    handle = ServerHandle(engine, host="127.0.0.1", port=0)
    await handle.start()
    session = f"exstv-attached-{os.getpid()}"
    try:
        made = [engine.sessions.create(1 + k % 20, f"10.1.{k // 250}.{k % 250}:{40000 + k}", "bench")
                for k in range(a.sessions)]

        async def traffic() -> None:
            k = 0
            while True:
                k += 1
                for i, s in enumerate(made):
                    engine.sessions.sent(s, 300_000 + (k * 7919 + i) % 50_000)
                await asyncio.sleep(1)

        feeder = asyncio.ensure_future(traffic())
        await asyncio.sleep(2)
        alone_cpu, alone_lo = await measure(a.seconds)
        cmd = (f"cd {ROOT} && exec env -u COLUMNS -u LINES {sys.executable} -m exstreamtv.cli console "
               f"--connect http://127.0.0.1:{handle.port}")
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", cmd], check=True)
        await asyncio.sleep(4)  # attached and drawn
        pane_pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], capture_output=True,
                                      text=True).stdout.strip())
        console = psutil.Process(pane_pid)
        c0 = sum(console.cpu_times()[:2])
        t0 = time.monotonic()
        with_cpu, with_lo = await measure(a.seconds)
        console_cpu = (sum(console.cpu_times()[:2]) - c0) / (time.monotonic() - t0)
        screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout
        feeder.cancel()
        print(f"server with 20 channels, {a.sessions} sessions; {a.seconds:g} s alone, then {a.seconds:g} s with one "
              "attached console (160x48, 1 refresh/s)")
        print(f"console process CPU: {console_cpu * 100:.1f}% of one core")
        print(f"server CPU: {alone_cpu * 100:.1f}% alone, {with_cpu * 100:.1f}% attached: "
              f"+{(with_cpu - alone_cpu) * 100:.1f}% per console (includes the synthetic session feeder)")
        print(f"on the wire: {(with_lo - alone_lo) / 1000:.1f} kB/s per console (loopback, both directions counted "
              "once)")
        print("console shows the server:", "yes" if "Bench 01" in screen and "attached" in screen else "NO")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
        await handle.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--sessions", type=int, default=500)
    asyncio.run(run(p.parse_args()))
