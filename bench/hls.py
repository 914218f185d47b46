"""HLS benchmark: many HLS viewers through Debian's nginx (deploy/nginx.conf) in front of one
server, and how fast a playlist request gets a playable first segment.

Prints: origin requests per segment (segments and playlists), origin CPU (server process,
FFmpeg apart), nginx CPU, the share of viewers that kept up (every segment, in time), and
the time from a playlist request to a downloaded first segment on a cold channel (not
running) and a warm one (running), straight from the origin.

    .venv/bin/python bench/hls.py [--viewers 1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from common import ROOT, SMALL_PROFILE, ServerProcess, raise_fd_limit

import sys

sys.path.insert(0, str(ROOT))
from tests.nginx import Nginx  # noqa: E402

CONFIG = SMALL_PROFILE + """
streaming:
  channel_grace_seconds: 1.0
hls:
  segment_seconds: 2.0
"""


class Conn:
    """One keep-alive HTTP/1.1 connection, as a player keeps one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        assert self.reader is not None
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench-hls\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:  # chunked
            parts = []
            while True:
                size = int((await self.reader.readline()).strip() or b"0", 16)
                if size == 0:
                    await self.reader.readline()
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def parse_playlist(text: str) -> tuple[float, list[tuple[int, float]]]:
    target, segs, dur = 2.0, [], 0.0
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(line.split(":")[1])
        elif line.startswith("#EXTINF:"):
            dur = float(line[8:].rstrip(","))
        elif line and not line.startswith("#"):
            segs.append((int(line.removesuffix(".ts")), dur))
    return target, segs


class Player:
    """Reloads the playlist each target duration and fetches every new segment, starting three
    segments back from the live edge (as hls.js does)."""

    def __init__(self) -> None:
        self.media = 0.0
        self.missing = 0
        self.errors = 0
        self.started: float | None = None
        self.ended: float | None = None
        self.late = 0  # segments that arrived after the player would have needed them

    async def run(self, port: int, path: str, seconds: float, delay: float) -> None:
        await asyncio.sleep(delay)
        loop = asyncio.get_running_loop()
        conn = Conn(port)
        base = path.rsplit("/", 1)[0]
        next_seq: int | None = None
        self.started = loop.time()
        end = self.started + seconds
        play_clock: float | None = None  # wall time at which the fetched media runs out
        try:
            while loop.time() < end:
                t = loop.time()
                status, body = await conn.get(path)
                if status != 200:
                    self.errors += 1
                    await asyncio.sleep(1)
                    continue
                target, segs = parse_playlist(body.decode())
                if next_seq is None and segs:
                    next_seq = segs[max(0, len(segs) - 3)][0]
                for seq, dur in segs:
                    if next_seq is None or seq < next_seq:
                        continue
                    if seq > next_seq:
                        self.missing += seq - next_seq
                    status, _ = await conn.get(f"{base}/{seq}.ts")
                    if status != 200:
                        self.errors += 1
                        continue
                    now = loop.time()
                    if play_clock is None:
                        play_clock = now
                    elif now > play_clock + 0.25:
                        self.late += 1
                        play_clock = now
                    play_clock += dur
                    self.media += dur
                    next_seq = seq + 1
                await asyncio.sleep(max(0.05, target / 2 - (loop.time() - t)))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.errors += 1
        finally:
            conn.close()
            self.ended = loop.time()

    def kept_up(self) -> bool:
        return self.missing == 0 and self.errors == 0 and self.late == 0 and self.media > 0


def cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


async def first_segment_time(port: int, channel: int) -> float:
    conn = Conn(port)
    t0 = time.monotonic()
    status, body = await conn.get(f"/hls/channels/{channel}/live.m3u8")
    assert status == 200, body[:200]
    _, segs = parse_playlist(body.decode())
    status, seg = await conn.get(f"/hls/channels/{channel}/{segs[-1][0]}.ts")
    assert status == 200 and seg[0] == 0x47
    conn.close()
    return time.monotonic() - t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--viewers", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    raise_fd_limit()
    server = ServerProcess(CONFIG)
    server.wait_ready()
    proxy = Nginx(f"127.0.0.1:{server.port}", Path(tempfile.mkdtemp(prefix="exstv-nginx-")))
    try:
        proxy.wait_ready()
        # time to a playable first segment: cold (channel not running) and warm
        cold, warm = [], []
        for ch in (2, 3, 2, 3, 2, 3):
            # the last HLS session of this channel ends 3 target durations after its last fetch,
            # the channel 1 s (grace) after that: it is cold again
            await asyncio.sleep(4.5)
            cold.append(await first_segment_time(server.port, ch))
            warm.append(await first_segment_time(server.port, ch))
        print(f"first segment: cold median {statistics.median(cold) * 1000:.0f} ms (max {max(cold) * 1000:.0f}), "
              f"warm median {statistics.median(warm) * 1000:.1f} ms (max {max(warm) * 1000:.1f}) over {len(cold)}")
        # the viewers, through nginx
        warmup = Conn(proxy.port)
        for _ in range(6):  # a running channel with a full window, as viewers find it
            status, _ = await warmup.get("/hls/channels/1/live.m3u8")
            assert status == 200
            await asyncio.sleep(1.5)
        warmup.close()
        before = server.api("/api/overview")["hls"]
        made_before = server.api("/api/channels/1")["hls"]["total_segments"]
        nginx = [psutil.Process(proxy.proc.pid)] + psutil.Process(proxy.proc.pid).children()
        c0 = (server.cpu_seconds(), server.ffmpeg_cpu_seconds(), cpu(nginx), time.process_time())
        t0 = time.monotonic()
        players = [Player() for _ in range(args.viewers)]
        await asyncio.gather(*(p.run(proxy.port, "/hls/channels/1/live.m3u8", args.seconds, 2.0 * i / args.viewers)
                               for i, p in enumerate(players)))
        wall = time.monotonic() - t0
        c1 = (server.cpu_seconds(), server.ffmpeg_cpu_seconds(), cpu(nginx), time.process_time())
        after = server.api("/api/overview")["hls"]
        made = server.api("/api/channels/1")["hls"]["total_segments"] - made_before
        seg_req = after["segments_served"] - before["segments_served"]
        pl_req = after["playlists_served"] - before["playlists_served"]
        kept = sum(p.kept_up() for p in players)
        media = sum(p.media for p in players)
        print(f"{args.viewers} HLS viewers through nginx for {args.seconds:g} s: {made} segments made; "
              f"origin got {seg_req} segment requests ({seg_req / max(1, made):.2f} per segment) and {pl_req} "
              f"playlist requests ({pl_req / max(1, made):.2f} per segment)")
        print(f"  origin CPU {100 * (c1[0] - c0[0]) / wall:.1f}% of a core (FFmpeg {100 * (c1[1] - c0[1]) / wall:.1f}%), "
              f"nginx {100 * (c1[2] - c0[2]) / wall:.1f}%, these viewers {100 * (c1[3] - c0[3]) / wall:.1f}%; "
              f"origin RSS {server.rss() / 2**20:.0f} MiB")
        print(f"  kept up: {kept}/{args.viewers} ({100 * kept / args.viewers:.1f}%); media fetched "
              f"{media / args.viewers:.1f} s per viewer; missing segments {sum(p.missing for p in players)}, "
              f"late {sum(p.late for p in players)}, errors {sum(p.errors for p in players)}")
    finally:
        proxy.stop()
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
