"""Console under load: the real server in console mode (in a tmux pane) with N curl viewers.

Runs the same load twice, once with the console (``exstreamtv`` in a 160x48 tmux pane) and
once headless (``--no-tui``), and prints for each: the longest gap between bytes seen by a
probe viewer that joins after the load (target < 0.5 s), the event-loop lag p99 and max
(from ``/healthz``, target p99 < 20 ms), the server process CPU, and the console's share
(console-mode CPU minus headless CPU, target < 5% of a core).

    .venv/bin/python bench/console_load.py [--viewers 1000] [--seconds 30] [--channels 3]
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

import httpx
import psutil

from common import ROOT, SMALL_PROFILE, free_port, make_test_clip, raise_fd_limit


class Server:
    def __init__(self, console: bool, config: Path, size: str = "160x48") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="exstv-cload-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.console = console
        self.session = f"exstv-cload-{os.getpid()}"
        args = [sys.executable, "-m", "exstreamtv.cli", "--config", str(config), "--host", "127.0.0.1", "--port",
                str(self.port), "--data-dir", str(self.tmp / "data"), "--log-level", "warning"]
        if console:
            w, h = size.split("x")
            cmd = f"cd {ROOT} && ulimit -n $(ulimit -Hn) && exec " + " ".join(args)
            subprocess.run(["tmux", "new-session", "-d", "-s", self.session, "-x", w, "-y", h, cmd], check=True)
            self.proc = None
        else:
            self.proc = subprocess.Popen(args + ["--no-tui"], cwd=ROOT, stderr=open(self.tmp / "log", "w"))
        self.ps: psutil.Process | None = None

    def wait_ready(self) -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            raise SystemExit("server did not start")
        pid = int((self.tmp / "data" / "exstreamtv.lock").read_text().strip())
        self.ps = psutil.Process(pid)

    def cpu(self) -> float:
        assert self.ps is not None
        t = self.ps.cpu_times()
        return t.user + t.system

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True,
                              text=True).stdout if self.console else ""

    def stop(self) -> None:
        if self.console:
            subprocess.run(["tmux", "send-keys", "-t", self.session, "q"])
            try:
                self.ps.wait(30)  # type: ignore[union-attr]
            except (psutil.Error, AttributeError):
                pass
            subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
        else:
            assert self.proc is not None
            self.proc.terminate()
            self.proc.wait(30)


async def probe_viewer(port: int, channel: int, seconds: float) -> tuple[float, int]:
    """(longest gap between bytes, bytes) of one viewer reading as fast as it can."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /stream/channels/{channel}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    end = time.monotonic() + seconds
    last = None
    gap = 0.0
    total = 0
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(reader.read(65536), max(0.1, end - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if not data:
            break
        now = time.monotonic()
        if last is not None and total > 50_000:  # after the join burst
            gap = max(gap, now - last)
        last = now
        total += len(data)
    if last is not None:
        gap = max(gap, time.monotonic() - last) if time.monotonic() < end else gap
    writer.close()
    return gap, total


async def load_round(console: bool, config: Path, viewers: int, seconds: float, channels: int) -> dict:
    srv = Server(console, config)
    curls: list[asyncio.subprocess.Process] = []
    try:
        await asyncio.to_thread(srv.wait_ready)
        curl = shutil.which("curl")
        assert curl, "curl is needed"
        for i in range(viewers):
            curls.append(await asyncio.create_subprocess_exec(
                curl, "-s", "-o", "/dev/null", "-m", str(seconds + 15), f"{srv.base}/stream/channels/{1 + i % channels}.ts"))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.sleep(3)  # joins settle
        cpu0, t0 = srv.cpu(), time.monotonic()
        lags: list[float] = []

        async def poll_lag() -> None:
            async with httpx.AsyncClient(timeout=5) as c:
                while time.monotonic() - t0 < seconds:
                    try:
                        lags.append((await c.get(srv.base + "/healthz")).json()["event_loop"]["current_ms"])
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(0.5)

        probes = await asyncio.gather(poll_lag(), *(probe_viewer(srv.port, 1 + k % channels, seconds)
                                                    for k in range(3)))
        cpu = srv.cpu() - cpu0
        wall = time.monotonic() - t0
        health = httpx.get(srv.base + "/healthz", timeout=5).json()["event_loop"]
        screen = srv.screen()
        gaps = [g for g, _ in probes[1:]]
        rate = [b * 8 / seconds / 1e6 for _, b in probes[1:]]
        return {"gap": max(gaps), "rate": min(rate), "p99": health["p99_ms"], "max": health["max_1m_ms"],
                "cpu": cpu / wall * 100, "screen_ok": ("viewers" in screen) if console else True,
                "polled_max": max(lags, default=0.0)}
    finally:
        for p in curls:
            if p.returncode is None:
                p.kill()
        await asyncio.gather(*(p.wait() for p in curls), return_exceptions=True)
        srv.stop()


async def main(a: argparse.Namespace) -> None:
    raise_fd_limit()
    if shutil.which("tmux") is None:
        raise SystemExit("tmux is needed (apt-get install tmux)")
    tmp = Path(tempfile.mkdtemp(prefix="exstv-cload-media-"))
    clip = make_test_clip(tmp / "clip.mp4", 30)
    config = tmp / "bench.yaml"
    chans = "".join(f"  - number: {n}\n    name: Load {n}\n    lineup: [{clip}]\n" for n in range(1, a.channels + 1))
    config.write_text(SMALL_PROFILE + f"session_manager:\n  max_sessions_per_channel: {a.viewers + 100}\n"
                      f"  max_sessions_per_address: {a.viewers + 100}\n"
                      "server:\n  limit_concurrency: 5000\nchannels:\n" + chans)
    results = {}
    for console in (True, False):
        results[console] = r = await load_round(console, config, a.viewers, a.seconds, a.channels)
        label = "console 160x48" if console else "headless      "
        print(f"{label}: {a.viewers} curl viewers on {a.channels} channels, {a.seconds:g}s: probe viewers' longest "
              f"gap between bytes {r['gap']:.3f}s (lowest rate {r['rate']:.2f} Mbit/s); loop lag p99 "
              f"{r['p99']:.1f} ms, max {r['max']:.1f} ms; server CPU {r['cpu']:.1f}% of a core"
              + ("" if r["screen_ok"] else "  [console screen not seen]"), flush=True)
    print(f"console's own CPU (console minus headless): {results[True]['cpu'] - results[False]['cpu']:.1f}% of a core")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--viewers", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--channels", type=int, default=3)
    asyncio.run(main(p.parse_args()))
