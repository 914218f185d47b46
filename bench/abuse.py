"""Abuse benchmark: the server under hostile load while real viewers watch.

One viewer on each of 3 channels (from 127.0.0.1). Then, one phase at a time, each for
``--seconds`` (from other loopback addresses, as an attacker on another machine would be):

- ``idle``: 4000 connections that never send a byte (kept open, re-opened when closed);
- ``guide``: 40 clients fetching ``/iptv/xmltv.xml`` in a loop;
- ``stalled``: 500 viewers that request a stream and never read;
- ``logo``: 60 parallel requests for a logo nobody asked for before.

For each phase: the real viewers' longest gap between bytes (target under 1 s), ``/healthz``
latency p99 over fresh connections (target under 100 ms), whether a new viewer could still
tune in, the server's RSS and the kernel's TCP socket memory (``/proc/net/sockstat``).

    .venv/bin/python bench/abuse.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path

from common import SMALL_PROFILE, ServerProcess, make_test_clip, raise_fd_limit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tcp_mem_mb() -> float:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1]) * 4096 / 1e6
    return 0.0


class Viewer:
    def __init__(self, port: int, channel: int) -> None:
        self.port, self.channel = port, channel
        self.last = time.monotonic()
        self.worst = 0.0
        self.bytes = 0
        self.task = asyncio.ensure_future(self._run())

    def reset(self) -> None:
        self.worst = 0.0

    async def _run(self) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", self.port)
        w.write(f"GET /stream/channels/{self.channel}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while True:
            data = await r.read(65536)
            if not data:
                return
            now = time.monotonic()
            self.worst = max(self.worst, now - self.last)
            self.last = now
            self.bytes += len(data)


async def raw_request(port: int, request: bytes, source: str = "127.0.0.1", read_all: bool = True,
                      timeout: float = 20) -> bytes:
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), timeout)
    try:
        w.write(request)
        return await asyncio.wait_for(r.read() if read_all else r.read(4096), timeout)
    finally:
        w.close()


async def health_probe(port: int, stop: asyncio.Event, out: list[float]) -> None:
    req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            body = await raw_request(port, req, timeout=10)
            out.append(time.monotonic() - t0 if b" 200 " in body[:20] else 10.0)
        except (OSError, asyncio.TimeoutError):
            out.append(10.0)
        await asyncio.sleep(0.1)


async def new_viewer_ok(port: int) -> bool:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
        w.write(b"GET /stream/channels/2.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = 0
        deadline = time.monotonic() + 10
        while got < 50_000 and time.monotonic() < deadline:
            data = await asyncio.wait_for(r.read(65536), 10)
            if not data:
                break
            got += len(data)
        w.close()
        return got >= 50_000
    except (OSError, asyncio.TimeoutError):
        return False


async def idle_flood(port: int, stop: asyncio.Event, n: int = 4000) -> None:
    socks: list[socket.socket] = []
    try:
        while not stop.is_set():
            socks = [s for s in socks if s.fileno() >= 0]
            while len(socks) < n:
                s = socket.socket()
                s.setblocking(False)
                s.bind((f"127.0.0.{2 + len(socks) % 8}", 0))
                try:
                    s.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
                    break
                socks.append(s)
            await asyncio.sleep(10)  # re-open what the server closed, every 10 s
            for s in socks:
                try:
                    if s.recv(1) == b"":
                        s.close()
                except BlockingIOError:
                    pass
                except OSError:
                    s.close()
    finally:
        for s in socks:
            s.close()


async def guide_loops(port: int, stop: asyncio.Event, n: int = 40) -> None:
    req = b"GET /iptv/xmltv.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"

    async def loop(i: int) -> None:
        while not stop.is_set():
            try:
                await raw_request(port, req, source="127.0.0.10")
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)

    await asyncio.gather(*(loop(i) for i in range(n)))


async def stalled_readers(port: int, stop: asyncio.Event, n: int = 500) -> None:
    socks = []
    for i in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.bind((f"127.0.0.{20 + i % 4}", 0))
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        socks.append(s)
    await asyncio.sleep(0.5)
    for i, s in enumerate(socks):
        try:
            s.send(f"GET /stream/channels/{1 + i % 3}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        except OSError:
            pass
    await stop.wait()
    for s in socks:
        s.close()


async def logo_burst(port: int, stop: asyncio.Event, n: int = 60) -> None:
    req = b"GET /iptv/logos/3.png HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    t0 = time.monotonic()
    answers = await asyncio.gather(*(raw_request(port, req, source="127.0.0.30") for _ in range(n)),
                                   return_exceptions=True)
    ok = sum(1 for a in answers if isinstance(a, bytes) and b" 200 " in a[:20])
    print(f"  logo: {ok}/{n} answered 200 in {time.monotonic() - t0:.2f} s")
    await stop.wait()


async def run(args: argparse.Namespace) -> None:
    raise_fd_limit()
    tmp = Path(tempfile.mkdtemp(prefix="exstv-abuse-"))
    clip = make_test_clip(tmp / "clip.mp4", 120)
    chans = "".join(f"  - number: {n}\n    name: Abuse {n}\n    lineup: [{clip}]\n" for n in (1, 2, 3))
    # defaults for every limit (per-address caps included): the attackers use other addresses
    server = ServerProcess(SMALL_PROFILE + "channels:\n" + chans, env={"EXSTREAMTV_MAX_SESSIONS_PER_ADDRESS": "16"})
    try:
        server.wait_ready()
        port = server.port
        viewers = [Viewer(port, n) for n in (1, 2, 3)]
        await asyncio.sleep(5)
        print(f"{'phase':8} {'viewer gap max':>15} {'healthz p99':>12} {'new viewer':>11} {'RSS':>8} {'TCP mem':>8}")
        phases = [p for p in (("none", None), ("idle", idle_flood), ("guide", guide_loops),
                              ("stalled", stalled_readers), ("logo", logo_burst)) if p[0] in args.phases.split(",")]
        for name, attack in phases:
            for v in viewers:
                v.reset()
            stop = asyncio.Event()
            lat: list[float] = []
            tasks = [asyncio.ensure_future(health_probe(port, stop, lat))]
            if attack is not None:
                tasks.append(asyncio.ensure_future(attack(port, stop)))
            await asyncio.sleep(args.seconds / 2)
            tuned = await new_viewer_ok(port)
            await asyncio.sleep(args.seconds / 2)
            rss, mem = server.rss() / 1e6, tcp_mem_mb()
            after = ""
            if name == "stalled":  # the stalled readers are dropped (RST) once idle_timeout_seconds pass
                await asyncio.sleep(max(0.0, 45 - args.seconds))
                after = f"  (after the 30 s idle timeout: TCP mem {tcp_mem_mb():.1f} MB)"
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            p99 = sorted(lat)[max(0, int(len(lat) * 0.99) - 1)] if lat else float("nan")
            gap = max(v.worst for v in viewers)
            print(f"{name:8} {gap:14.2f}s {p99 * 1000:10.1f}ms {'yes' if tuned else 'REFUSED':>11} "
                  f"{rss:6.0f}MB {mem:6.1f}MB{after}")
            await asyncio.sleep(2)
        alive = sum(1 for v in viewers if not v.task.done())
        print(f"viewers still connected at the end: {alive}/3; bytes: "
              + ", ".join(f"{v.bytes / 1e6:.1f} MB" for v in viewers))
        health = server.api("/healthz")
        print("connections:", health.get("connections"), " loop lag p99:",
              health.get("event_loop", {}).get("p99_ms", health.get("event_loop")))
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--phases", default="none,idle,guide,stalled,logo")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
