"""Fan-out benchmark: N concurrent viewers of one demo channel.

Prints, for each N: the server's CPU seconds per viewer-second (the server process, and
FFmpeg separately), peak RSS, and the share of viewers that received >= 99% of real time.
Also time to first byte and to first decodable keyframe, cold and warm.

    .venv/bin/python bench/fanout.py [--viewers 100,500,1000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import threading
import time

import psutil

from common import ServerProcess, ViewerStats, raise_fd_limit, realtime_share, viewer


def sample_rss(server: ServerProcess, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], server.rss())
        except Exception:
            return
        time.sleep(0.25)


async def join_times(server: ServerProcess, label: str) -> None:
    st = ViewerStats()
    await viewer(server.port, "/stream/channels/1.ts", 3.0, st)
    def ms(t):
        return "n/a" if t is None else f"{(t - st.connected_at) * 1000:.0f} ms"
    print(f"{label:5} join: headers {ms(st.header_at)}, first byte {ms(st.first_byte_at)}, "
          f"first keyframe {ms(st.first_key_at)}, decodable {ms(st.decodable_at)}")


async def curl_round(server: ServerProcess, n: int, seconds: float) -> None:
    """N viewers as curl processes (C clients, so the load generator is not the bottleneck)."""
    curl = shutil.which("curl")
    if curl is None:
        print("curl not found; skipping the curl client")
        return
    ch0 = server.api("/api/channels")["channels"][0]["bytes_out"]
    cpu0, ff0, t0 = server.cpu_seconds(), server.ffmpeg_cpu_seconds(), time.time()
    peak = [server.rss()]
    stop = threading.Event()
    th = threading.Thread(target=sample_rss, args=(server, stop, peak), daemon=True)
    th.start()
    procs = []
    for i in range(n):
        procs.append(await asyncio.create_subprocess_exec(
            curl, "-s", "-o", "/dev/null", "-m", str(seconds), "-w", "%{size_download}",
            f"{server.base}/stream/channels/1.ts", stdout=asyncio.subprocess.PIPE))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    outs = await asyncio.gather(*(p.communicate() for p in procs))
    wall = time.time() - t0
    produced = server.api("/api/channels")["channels"][0]["bytes_out"] - ch0
    cpu = server.cpu_seconds() - cpu0
    ff = server.ffmpeg_cpu_seconds() - ff0
    stop.set()
    th.join()
    got = [int(o[0] or 0) for o in outs]
    # a viewer at real time received everything the channel produced while it watched
    ratio = [g / max(1, produced * min(1.0, seconds / wall)) for g in got]
    ok = sum(1 for r in ratio if r >= 0.99)
    print(f"N={n:5} (curl): server CPU {cpu / (n * seconds) * 1000:.2f} ms per viewer-second "
          f"({cpu / wall * 100:.0f}% of a core; FFmpeg {ff / wall * 100:.0f}%), peak RSS {peak[0] / 2**20:.0f} MiB, "
          f"real time: {ok / n * 100:.1f}% of viewers got >= 99% of the channel's bytes "
          f"(median {statistics.median(ratio) * 100:.1f}%), channel produced {produced * 8 / wall / 1e6:.2f} Mbit/s")


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    server = ServerProcess(args.config.read() if args.config else None,
                           env={"EXSTREAMTV_MAX_SESSIONS": str(max(args.viewers) + 10),
                                "EXSTREAMTV_MAX_SESSIONS_PER_ADDRESS": str(max(args.viewers) + 10)})
    try:
        server.wait_ready()
        print(f"server pid {server.proc.pid} on {server.base}; demo channel 1")
        await join_times(server, "cold")
        # keep one viewer on so the channel stays warm, then measure a warm join
        keeper = ViewerStats()
        keep_task = asyncio.ensure_future(viewer(server.port, "/stream/channels/1.ts", 1e9, keeper))
        await asyncio.sleep(2)
        await join_times(server, "warm")
        for n in args.viewers:
            if args.client == "curl":
                await curl_round(server, n, args.seconds)
                continue
            stats = [ViewerStats() for _ in range(n)]
            stop = threading.Event()
            peak = [server.rss()]
            th = threading.Thread(target=sample_rss, args=(server, stop, peak), daemon=True)
            th.start()
            me = psutil.Process()
            cpu0, ff0, t0 = server.cpu_seconds(), server.ffmpeg_cpu_seconds(), time.time()
            mine0 = sum(me.cpu_times()[:2])
            tasks = []
            for i, st in enumerate(stats):
                tasks.append(asyncio.ensure_future(viewer(server.port, "/stream/channels/1.ts", args.seconds, st)))
                if i % 50 == 49:
                    await asyncio.sleep(0.05)  # a quick ramp, not a SYN flood
            await asyncio.gather(*tasks)
            wall = time.time() - t0
            cpu = server.cpu_seconds() - cpu0
            ff = server.ffmpeg_cpu_seconds() - ff0
            mine = sum(me.cpu_times()[:2]) - mine0
            stop.set()
            th.join()
            viewer_seconds = sum(((s.last_byte_at or s.connected_at) - s.connected_at) for s in stats)
            errors = sum(1 for s in stats if s.error)
            rates = [s.bytes * 8 / max(0.001, (s.last_byte_at or 0) - (s.first_byte_at or 0)) / 1e6
                     for s in stats if s.first_byte_at and s.last_byte_at and s.last_byte_at > s.first_byte_at]
            print(f"N={n:5}: server CPU {cpu / max(viewer_seconds, 1e-9) * 1000:.2f} ms per viewer-second "
                  f"({cpu:.1f} s CPU over {wall:.1f} s wall = {cpu / wall * 100:.0f}% of a core; FFmpeg "
                  f"{ff / wall * 100:.0f}%), peak RSS {peak[0] / 2**20:.0f} MiB, real time: "
                  f"{realtime_share(stats) * 100:.1f}% of viewers, median rate "
                  f"{statistics.median(rates) if rates else 0:.2f} Mbit/s, errors {errors}; "
                  f"bench viewers' own CPU {mine / wall * 100:.0f}%")
            if errors:
                sample = next(s.error for s in stats if s.error)
                print(f"         first error: {sample}")
        keep_task.cancel()
        pool = server.api("/api/pool")
        print(f"pool after run: {pool['running']} running, {pool['rejected_spawns']} rejected spawns")
    finally:
        rc = server.stop()
        print(f"server exit code {rc}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", default="100,500,1000", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--seconds", default=20.0, type=float)
    p.add_argument("--config", type=argparse.FileType("r"), help="server config (default: the embedded demo)")
    p.add_argument("--client", choices=("python", "curl"), default="python",
                   help="viewers as asyncio sockets in this process (timestamps checked) or as curl processes "
                        "(byte counts; cheaper, so the load generator does not saturate a small machine)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
