"""Shared fixtures: real FFmpeg, small media, a real server on loopback, and a leak check."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from exstreamtv.engine.config import ChannelConfig, Config, parse_config
from exstreamtv.engine.engine import Engine
from exstreamtv.engine.ffmpeg.binary import FFmpegBinary, find_ffmpeg
from exstreamtv.server.runner import ServerHandle

SMALL_PROFILE = """
ffmpeg:
  width: 320
  height: 180
  fps: 15
  preset: ultrafast
  video_bitrate_kbps: 400
  audio_bitrate_kbps: 64
  keyframe_interval_seconds: 1.0
  start_timeout_seconds: 8
streaming:
  channel_grace_seconds: 1.0
  lead_seconds: 1.0
  readahead_seconds: 2.0
process_pool:
  cpu_guard: false  # a loaded test machine must not refuse channels (tests/test_copy.py turns it on)
hdhr:
  discovery_enabled: false  # port 65001 is fixed: only the tests of discovery and the control port take it
"""


def ffmpeg_children() -> list[psutil.Process]:
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "ffmpeg" in child.name() and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.Error:
            pass
    return out


@pytest.fixture(autouse=True)
def no_stray_ffmpeg():
    """Every test must leave no FFmpeg process behind."""
    yield
    deadline = 50
    leftovers = ffmpeg_children()
    while leftovers and deadline:
        import time

        time.sleep(0.1)
        deadline -= 1
        leftovers = ffmpeg_children()
    for p in leftovers:
        p.kill()
    assert not leftovers, f"test left FFmpeg processes running: {[p.pid for p in leftovers]}"


@pytest.fixture(scope="session")
def ffmpeg() -> FFmpegBinary:
    return find_ffmpeg()


def make_clip(ffmpeg: str, path: Path, seconds: float, video: str = "testsrc2", size: str = "320x180",
              rate: int = 15, audio: bool = True, freq: int = 440, title: str | None = None) -> Path:
    args = [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"{video}=s={size}:r={rate}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f={freq}:sample_rate=44100"]
    args += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(rate), "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    if title:
        args += ["-metadata", f"title={title}"]
    args.append(str(path))
    subprocess.run(args, check=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def media(ffmpeg: FFmpegBinary, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "a": make_clip(ffmpeg.path, d / "a.mp4", 3.0, "testsrc2", title="Clip A"),
        "b": make_clip(ffmpeg.path, d / "b.mkv", 3.0, "smptebars", size="640x360", rate=25, freq=880),
        "c": make_clip(ffmpeg.path, d / "c.mp4", 2.5, "rgbtestsrc", audio=False),
        "long": make_clip(ffmpeg.path, d / "long.mp4", 20.0, "testsrc2"),
    }


def merged_yaml(base: str, extra: str) -> str:
    """``extra`` over ``base``, section by section (a section in both is merged, not repeated)."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()
    a, b = yaml.load(base) or {}, yaml.load(extra) or {}
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(a.get(key), dict):
            a[key].update(value)
        else:
            a[key] = value
    out = io.StringIO()
    yaml.dump(a, out)
    return out.getvalue()


def small_config(channels: list[ChannelConfig], extra: str = "", env: dict | None = None) -> Config:
    cfg = parse_config(merged_yaml(SMALL_PROFILE, extra), "<test>", env=env or {})
    cfg.channels = channels
    return cfg


@dataclass
class Running:
    engine: Engine
    handle: ServerHandle
    base: str

    def client(self, **kw) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=httpx.Timeout(20.0), **kw)


class ServerFactory:
    def __init__(self, tmp_path: Path, ffmpeg: FFmpegBinary) -> None:
        self.tmp_path = tmp_path
        self.ffmpeg = ffmpeg
        self.running: list[Running] = []

    async def __call__(self, cfg: Config, data_dir: Path | None = None) -> Running:
        engine = Engine(cfg, data_dir or self.tmp_path / "data", ffmpeg=self.ffmpeg)
        handle = ServerHandle(engine, host="127.0.0.1", port=0)
        await handle.start()
        await engine.wait_scanned(60)
        r = Running(engine, handle, f"http://127.0.0.1:{handle.port}")
        self.running.append(r)
        return r

    async def close(self) -> None:
        for r in self.running:
            await r.handle.stop()


@pytest.fixture
async def server(tmp_path: Path, ffmpeg: FFmpegBinary):
    factory = ServerFactory(tmp_path, ffmpeg)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def embedded(tmp_path: Path):
    """``embedded(cfg)``: the console's own engine and server (as ``exstreamtv`` runs them), stopped at
    the end of the test even when it fails, so nothing it listens on outlives the test."""
    from exstreamtv.cli import EmbeddedBackend

    made: list[EmbeddedBackend] = []

    def make(cfg: Config) -> EmbeddedBackend:
        made.append(EmbeddedBackend(cfg, tmp_path / "data", "127.0.0.1", 0))
        return made[-1]

    try:
        yield make
    finally:
        for backend in made:
            await backend.stop()


async def capture(client: httpx.AsyncClient, path: str, seconds: float, stop_reading_after: float | None = None,
                  ) -> bytes:
    """Read a stream for ``seconds`` (wall time) and return the bytes."""
    buf = bytearray()
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    async with client.stream("GET", path) as resp:
        assert resp.status_code == 200, resp.status_code
        it = resp.aiter_raw()
        while loop.time() < end:
            try:
                chunk = await asyncio.wait_for(it.__anext__(), max(0.01, end - loop.time()))
            except (asyncio.TimeoutError, StopAsyncIteration):
                break
            buf += chunk
    return bytes(buf)


def decode(ffmpeg: FFmpegBinary, data: bytes, tmp_path: Path, name: str = "cap.ts") -> tuple[int, str, str]:
    """Decode a capture fully with FFmpeg: (exit code, error output, stream description)."""
    f = tmp_path / name
    f.write_bytes(data)
    dec = subprocess.run([ffmpeg.path, "-hide_banner", "-v", "error", "-i", str(f), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    info = subprocess.run([ffmpeg.path, "-hide_banner", "-i", str(f)], capture_output=True, text=True, timeout=60)
    return dec.returncode, dec.stderr, info.stderr


def channel(number: int, name: str, *paths: Path, **kw) -> ChannelConfig:
    return ChannelConfig(number=number, name=name, lineup=[str(p) for p in paths], **kw)


os.environ.setdefault("EXSTREAMTV_TEST", "1")


def flaky_ffmpeg(tmp_path: Path, ffmpeg: FFmpegBinary) -> tuple[FFmpegBinary, Path]:
    """An FFmpeg that fails (exit 1, 'simulated encoder crash') while the returned flag file exists:
    a pipeline failure, as opposed to a bad media file."""
    flag = tmp_path / "ffmpeg-fails"
    flag.write_text("1")
    wrapper = tmp_path / "flaky-ffmpeg"
    wrapper.write_text(f"#!/bin/sh\nif [ -e {flag} ]; then echo 'simulated encoder crash' >&2; exit 1; fi\n"
                       f"exec {ffmpeg.path} \"$@\"\n")
    wrapper.chmod(0o755)
    return FFmpegBinary(str(wrapper), ffmpeg.version, "test"), flag


DATA = Path(__file__).parent / "data"
SYSTEM_DTDS = [Path("/usr/share/sgml/xmltv/dtd/0.5/xmltv.dtd"), Path("/usr/share/xmltv/xmltv.dtd")]


@pytest.fixture(scope="session")
def xmltv_dtd() -> Path:
    """The XMLTV project's DTD, from Debian's libxmltv-perl package (fetched once into tests/data)."""
    DATA.mkdir(exist_ok=True)
    local = DATA / "xmltv.dtd"
    if local.exists():
        return local
    for p in SYSTEM_DTDS:
        if p.exists():
            shutil.copy(p, local)
            return local
    tmp = Path(tempfile.mkdtemp())
    ok = subprocess.run(["apt-get", "download", "libxmltv-perl"], cwd=tmp, capture_output=True).returncode == 0
    if not ok:  # a fresh machine has no package lists yet
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        ok = subprocess.run(["apt-get", "download", "libxmltv-perl"], cwd=tmp, capture_output=True).returncode == 0
    debs = list(tmp.glob("*.deb"))
    if ok and debs:
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tmp / "x")], check=True)
        found = list((tmp / "x").rglob("xmltv.dtd"))
        if found:
            shutil.copy(found[0], local)
            return local
    pytest.fail("the XMLTV DTD is needed: run `apt-get download libxmltv-perl` or put xmltv.dtd in tests/data")
