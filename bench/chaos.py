"""Chaos benchmark: 10 channels with viewers; a random channel FFmpeg is SIGKILLed every 0.5 s.

Prints spawns per second (max over any 1 s), restarts accepted/refused by reason, zombie
count at the end (must be 0), server RSS before/after, and how many viewers are still
connected.

    .venv/bin/python bench/chaos.py [--seconds 60] [--channels 10] [--viewers-per-channel 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil

from common import SMALL_PROFILE, ServerProcess, ViewerStats, make_test_clip, raise_fd_limit, viewer


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="exstv-chaos-"))
    clip = make_test_clip(tmp / "chaos.mp4", 120)
    chans = "".join(f"  - number: {n}\n    name: Chaos {n}\n    lineup: [{clip}]\n"
                    for n in range(1, args.channels + 1))
    server = ServerProcess(SMALL_PROFILE + "channels:\n" + chans)
    try:
        server.wait_ready()
        stats = [ViewerStats() for _ in range(args.channels * args.viewers_per_channel)]
        tasks = [asyncio.ensure_future(viewer(server.port, f"/stream/channels/{i % args.channels + 1}.ts",
                                              args.seconds + 15, st)) for i, st in enumerate(stats)]
        await asyncio.sleep(5)
        rss_before = server.rss()
        spawned: list[tuple[float, int]] = []
        kills = 0
        t_end = time.time() + args.seconds
        next_kill = time.time()
        while time.time() < t_end:
            pool = await asyncio.to_thread(server.api, "/api/pool")
            spawned.append((time.time(), pool["spawned_total"]))
            if time.time() >= next_kill:
                programs = [p["pid"] for p in pool["processes"] if p["role"] in ("program", "error_screen")]
                if programs:
                    try:
                        os.kill(random.choice(programs), signal.SIGKILL)
                        kills += 1
                    except ProcessLookupError:
                        pass
                next_kill += 0.5
            await asyncio.sleep(0.1)
        await asyncio.sleep(3)  # let the last restarts settle
        events = (await asyncio.to_thread(server.api, "/api/events?limit=5000"))["events"]
        accepted = Counter(e["data"].get("source") for e in events if e["kind"] == "restart_accepted")
        refused = Counter(e["data"].get("reason") for e in events if e["kind"] == "restart_refused")
        max_rate = 0
        for i, (t, n) in enumerate(spawned):
            later = [m for (u, m) in spawned[i:] if u - t <= 1.0]
            max_rate = max(max_rate, later[-1] - n)
        zombies = 0
        tracked = {p["pid"] for p in (await asyncio.to_thread(server.api, "/api/pool"))["processes"]}
        for c in server.ps.children(recursive=True):
            try:
                if c.status() == psutil.STATUS_ZOMBIE or ("ffmpeg" in c.name() and c.pid not in tracked):
                    zombies += 1
            except psutil.Error:
                pass
        rss_after = server.rss()
        connected = sum(1 for t in tasks if not t.done())
        breakers = await asyncio.to_thread(server.api, "/api/breakers")
        pool = await asyncio.to_thread(server.api, "/api/pool")
        print(f"{kills} kills over {args.seconds:.0f} s on {args.channels} channels")
        print(f"spawns per second: max {max_rate} over any 1 s (limit 5/s); total spawned {pool['spawned_total']}, "
              f"rejected {pool['rejected_spawns']} {pool['rejections_by_reason']}")
        print(f"restarts accepted: {dict(accepted)}; refused: {dict(refused)}")
        print(f"breakers: {Counter(b['state'] for b in breakers.values())}")
        print(f"zombies/untracked FFmpeg at the end: {zombies}")
        print(f"server RSS before {rss_before / 2**20:.0f} MiB, after {rss_after / 2**20:.0f} MiB")
        print(f"viewers still connected: {connected}/{len(tasks)}")
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        rc = server.stop()
        left = [c for c in psutil.process_iter(["name"]) if "ffmpeg" in (c.info["name"] or "")
                and c.ppid() == server.proc.pid]
        print(f"server exit code {rc}; FFmpeg left after stop: {len(left)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--channels", type=int, default=10)
    p.add_argument("--viewers-per-channel", type=int, default=2)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
