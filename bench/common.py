"""Shared helpers for the benchmarks: a real server process and lightweight raw-socket viewers."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exstreamtv.engine.stream.mpegts import CLOCK, TS, parse_header, pes_timestamps  # noqa: E402


SMALL_PROFILE = """
ffmpeg:
  width: 320
  height: 180
  fps: 15
  preset: ultrafast
  video_bitrate_kbps: 400
  keyframe_interval_seconds: 1.0
"""


def make_test_clip(path: Path, seconds: float) -> Path:
    """A testsrc2 + tone clip at the small profile (what the chaos and recovery benches play)."""
    from exstreamtv.engine.ffmpeg.binary import find_ffmpeg

    subprocess.run([find_ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=320x180:r=15", "-f",
                    "lavfi", "-i", "sine=f=440", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                    "-c:a", "aac", str(path)], check=True)
    return path


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ServerProcess:
    """``exstreamtv --no-tui`` in a subprocess, with its own data dir and port."""

    def __init__(self, config_text: str | None = None, data_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="exstv-bench-"))
        self.data_dir = data_dir or self.tmp / "data"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "exstreamtv.cli", "--no-tui", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir), "--log-level", "warning"]
        if config_text:
            cfg = self.tmp / "bench.yaml"
            cfg.write_text(config_text)
            args += ["--config", str(cfg)]
        self.log = open(self.tmp / "server.log", "w")
        # every bench viewer connects from this machine: no per-address stream cap
        env = {"EXSTREAMTV_MAX_SESSIONS_PER_ADDRESS": "100000", **(env or {})}
        self.proc = subprocess.Popen(args, stderr=self.log, cwd=ROOT, env={**os.environ, **env})
        self.ps = psutil.Process(self.proc.pid)

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.tmp / 'server.log'}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit("server did not start")

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def ffmpeg_cpu_seconds(self) -> float:
        """CPU of FFmpeg children: the ones already reaped plus the live ones."""
        t = self.ps.cpu_times()
        total = t.children_user + t.children_system
        for c in self.ps.children(recursive=True):
            try:
                t = c.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def api(self, path: str) -> dict:
        return httpx.get(self.base + path, timeout=10).json()

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


@dataclass
class ViewerStats:
    connected_at: float = 0.0
    header_at: float | None = None
    first_byte_at: float | None = None
    first_key_at: float | None = None
    decodable_at: float | None = None
    bytes: int = 0
    first_pts: float | None = None
    last_pts: float | None = None
    last_byte_at: float | None = None
    error: str | None = None
    pts_trace: list[float] = field(default_factory=list)
    max_gap: float = 0.0  # longest wait between two chunks after the first byte


def _scan(buf: bytes, base: int, st: ViewerStats, video_pid: int, now: float, deep: bool) -> None:
    """Look at whole packets in ``buf`` (aligned at ``base``) for video PES timestamps/keyframes."""
    start = (-base) % TS
    n = (len(buf) - start) // TS
    rng = range(n) if deep else range(n - 1, -1, -1)
    for k in rng:
        p = buf[start + k * TS:start + (k + 1) * TS]
        if p[0] != 0x47:
            continue
        info = parse_header(p)
        if info.pid != video_pid or not info.pusi:
            continue
        pts, dts, _, _ = pes_timestamps(p, info.payload_start)
        ts = (dts if dts is not None else pts)
        if ts is None:
            continue
        sec = ts / CLOCK
        if deep:
            if st.first_key_at is None and info.rai:
                st.first_key_at = now
                st.first_pts = sec
            elif st.first_key_at is not None and st.decodable_at is None:
                st.decodable_at = now  # the keyframe's PES is complete once the next one starts
            if st.decodable_at is not None:
                st.last_pts = sec
                return
        else:
            st.last_pts = sec
            return


async def viewer(port: int, path: str, seconds: float, st: ViewerStats, video_pid: int = 0x100) -> None:
    loop = asyncio.get_running_loop()
    st.connected_at = loop.time()
    last: tuple[bytes, int] | None = None
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    except OSError as exc:
        st.error = f"connect: {exc}"
        return
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        st.header_at = loop.time()
        if b" 200 " not in head.split(b"\r\n")[0]:
            st.error = head.split(b"\r\n")[0].decode()
            return
        # chunked transfer: parse chunk sizes so TS alignment is exact
        end = st.connected_at + seconds
        body_off = 0
        while loop.time() < end:
            line = await asyncio.wait_for(reader.readline(), max(0.05, end - loop.time()))
            size = int(line.strip() or b"0", 16)
            if size == 0:
                break
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            now = loop.time()
            if st.first_byte_at is None:
                st.first_byte_at = now
            if st.decodable_at is None:
                _scan(data, body_off, st, video_pid, now, deep=True)
            else:  # only the newest chunk matters for the final timestamp: scan it at the end
                last = (data, body_off)
            body_off += size
            st.bytes += size
            if st.last_byte_at is not None:
                st.max_gap = max(st.max_gap, now - st.last_byte_at)
            st.last_byte_at = now
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError, ValueError) as exc:
        if not isinstance(exc, asyncio.TimeoutError):
            st.error = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()
        if last is not None:
            _scan(last[0], last[1], st, video_pid, loop.time(), deep=False)


def realtime_share(stats: list[ViewerStats], lead: float = 1.0) -> float:
    """Share of viewers whose received media kept up with the wall clock (>= 99%)."""
    ok = 0
    for st in stats:
        if st.error or st.first_pts is None or st.last_pts is None or st.first_byte_at is None:
            continue
        wall = (st.last_byte_at or 0) - st.first_byte_at
        media = st.last_pts - st.first_pts
        if wall > 0 and media >= 0.99 * wall:
            ok += 1
    return ok / len(stats) if stats else 0.0


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
