"""Library benchmark: a synthetic library of 20,000 episode files with NFO sidecars.

Files are hard links of a few tiny 22-minute clips (one probe per distinct file: links
share an inode and the probe knows it), so the figures measure the scan itself. Prints:
first scan time, a rescan with nothing changed, server start-up with the scanned library
(to serving /healthz and to a complete channel list), RSS after loading it, the XMLTV for
100 channels x 72 h, and a scan of distinct files while a viewer watches (probes through
the process pool: the viewer's longest gap, rejected spawns).

    .venv/bin/python bench/library.py [--episodes 20000] [--channels 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from common import SMALL_PROFILE, ServerProcess, ViewerStats, viewer

from exstreamtv.engine.ffmpeg.binary import find_ffmpeg

NFO = ("<?xml version='1.0' encoding='UTF-8'?><episodedetails><title>Episode {e} of {show}</title>"
       "<season>{s}</season><episode>{e}</episode><plot>In which things happen, as they do in episode {e}."
       "</plot><aired>20{yy:02d}-0{m}-1{d}</aired></episodedetails>")


def make_clips(root: Path, n: int, seconds: float) -> list[Path]:
    ff = find_ffmpeg().path
    out = []
    for i in range(n):
        p = root / f"clip{i}.mkv"
        subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", f"color=c=0x{i * 9 % 256:02x}4080:s=64x36:r=1",
                        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", str(seconds + i), "-c:v", "libx264",
                        "-preset", "ultrafast", "-c:a", "aac", "-b:a", "8k", str(p)], check=True)
        out.append(p)
    return out


def make_library(root: Path, clips: list[Path], episodes: int) -> int:
    shows = max(1, episodes // 200)
    made = 0
    for sh in range(shows):
        show = root / "tv" / f"Show {sh:03d} (20{sh % 20:02d})"
        show.mkdir(parents=True)
        (show / "tvshow.nfo").write_text(f"<tvshow><title>Show {sh:03d}</title><genre>Drama</genre></tvshow>")
        for s in range(1, 5):
            season = show / f"Season {s:02d}"
            season.mkdir()
            for e in range(1, 51):
                if made >= episodes:
                    return made
                name = f"Show {sh:03d} - S{s:02d}E{e:02d}"
                os.link(clips[made % len(clips)], season / f"{name}.mkv")
                (season / f"{name}.nfo").write_text(NFO.format(e=e, show=sh, s=s, yy=sh % 20, m=1 + s % 9,
                                                               d=e % 10))
                made += 1
    return made


def config(root: Path, channels: int, extra_libs: str = "") -> str:
    chans = "\n".join(f"  - {{number: {n}, name: Channel {n}, lineup: [{{library: tv}}]}}"
                      for n in range(1, channels + 1))
    return SMALL_PROFILE + f"""
streaming:
  channel_grace_seconds: 2.0
library_scan:
  interval_minutes: 0
libraries:
  - {{name: tv, kind: shows, paths: [{root / 'tv'}]}}
{extra_libs}channels:
{chans}
"""


def wait_scans(server: ServerProcess, names: list[str], timeout: float = 3600) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        libs = {lib["name"]: lib for lib in server.api("/api/libraries")["libraries"]}
        if all(libs[n]["last_scan"] and not libs[n]["scanning"] for n in names):
            return libs
        time.sleep(0.2)
    raise SystemExit("scan did not finish")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=20000)
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=200, help="distinct files scanned while a viewer watches")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="exstv-lib-"))
    try:
        t = time.monotonic()
        clips = make_clips(root, 20, 1320.0)
        made = make_library(root, clips, args.episodes)
        print(f"library: {made} episode files (hard links of {len(clips)} clips of ~22 min) with NFO sidecars, "
              f"made in {time.monotonic() - t:.1f}s")
        data = root / "data"
        server = ServerProcess(config(root, args.channels), data_dir=data)
        t0 = time.monotonic()
        server.wait_ready()
        libs = wait_scans(server, ["tv"])
        print(f"first scan: {libs['tv']['last_scan_seconds']:.1f}s for {libs['tv']['items']} items "
              f"({libs['tv']['problems']} skipped, {libs['tv']['warnings']} warnings); server up to scanned "
              f"{time.monotonic() - t0:.1f}s")
        r = httpx.post(server.base + "/api/libraries/tv/scan", json={}, timeout=10)
        assert r.status_code == 202, r.text
        time.sleep(0.2)
        libs = wait_scans(server, ["tv"])
        print(f"rescan, nothing changed: {libs['tv']['last_scan_seconds']:.2f}s")
        server.stop()
        # start-up with the scanned library
        server = ServerProcess(config(root, args.channels), data_dir=data)
        t0 = time.monotonic()
        server.wait_ready()
        up = time.monotonic() - t0
        while True:
            chans = server.api("/api/channels")["channels"]
            if all(c["state"] in ("idle", "playing", "starting") for c in chans):
                break
            time.sleep(0.05)
        ready = time.monotonic() - t0
        rss = server.rss() / 2**20
        print(f"start-up with the scanned library: serving in {up:.2f}s, all {len(chans)} channels on their "
              f"schedules in {ready:.2f}s; RSS {rss:.0f} MiB")
        times = []
        for i in range(3):
            t = time.monotonic()
            xml = httpx.get(server.base + f"/iptv/xmltv.xml?n={i}", timeout=60,
                            headers={"Host": f"127.0.0.{i + 1}:{server.port}"}).content
            times.append(time.monotonic() - t)
        print(f"XMLTV for {args.channels} channels x 72 h: {xml.count(b'<programme ')} programmes, "
              f"{len(xml) / 2**20:.1f} MiB, built in {min(times):.2f}s (best of 3; each first request of a minute "
              f"builds it once)")
        server.stop()
        # distinct files scanned while a viewer watches: probes take background spawn tokens only
        extra = root / "extra"
        extra.mkdir()
        ff = find_ffmpeg().path
        base = extra / "base.mkv"
        subprocess.run([ff, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=64x36:r=5", "-t", "3", "-c:v",
                        "libx264", "-preset", "ultrafast", str(base)], check=True)
        base_bytes = base.read_bytes()
        base.unlink()
        server = ServerProcess(config(root, 2, f"  - {{name: extra, kind: other, paths: [{extra}]}}\n"),
                               data_dir=data)
        server.wait_ready()
        st = ViewerStats()

        async def watch_and_scan() -> float:
            task = asyncio.ensure_future(viewer(server.port, "/stream/channels/1.ts", 40.0, st))
            await asyncio.sleep(5)
            for i in range(args.distinct):  # new files, each its own inode: each is probed
                (extra / f"x{i}.mkv").write_bytes(base_bytes + i.to_bytes(4, "big"))
            t = time.monotonic()
            httpx.post(server.base + "/api/libraries/extra/scan", json={}, timeout=10)
            while True:
                await asyncio.sleep(0.2)
                lib = next(x for x in server.api("/api/libraries")["libraries"] if x["name"] == "extra")
                if lib["last_scan"] and not lib["scanning"]:
                    break
            took = time.monotonic() - t
            await task
            return took

        took = asyncio.run(watch_and_scan())
        pool = server.api("/api/pool")
        print(f"scan of {args.distinct} distinct files while a viewer watches: {took:.1f}s "
              f"({args.distinct / took:.1f} probes/s); viewer's longest gap {st.max_gap * 1000:.0f} ms, "
              f"rejected spawns {pool['rejected_spawns']}")
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
