"""``exstreamtv scan [LIBRARY ...]``: rescan libraries now; ``exstreamtv reload``: make the
running server read its config again.

With a server running on the data dir (or ``--connect URL``) the server scans (its channels
pick up the changes at once) and this prints the progress until it is done. With none, the
libraries are scanned here into the data dir, and the next start serves the result.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sys
import time
from pathlib import Path

import httpx

from .attach import NotConnected, find_local_server
from .engine.clock import SystemClock
from .engine.config import Config
from .engine.observe.events import EventLog
from .engine.library.manager import LibraryManager
from .engine.onair.media import MediaProbe
from .engine.ffmpeg.binary import find_ffmpeg


def run_scan(names: list[str], cfg: Config, data_dir: Path, connect: str | None, token: str | None) -> int:
    known = [lib.name for lib in cfg.libraries]
    if not connect:
        try:
            connect, token_found = find_local_server(data_dir)
            token = token or token_found
        except NotConnected:
            connect = None
    if connect:
        try:
            return asyncio.run(_remote(connect, token, names))
        except httpx.ConnectError:
            if "--connect" in sys.argv:
                print(f"exstreamtv: cannot reach {connect}", file=sys.stderr)
                return 2  # asked for that server: do not scan behind its back
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"exstreamtv: unknown library {', '.join(unknown)} (libraries: {', '.join(known) or 'none'})",
              file=sys.stderr)
        return 2
    return asyncio.run(_local(names or known, cfg, data_dir))


async def _remote(url: str, token: str | None, names: list[str]) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as c:
        libs = (await c.get("/api/libraries")).json()["libraries"]
        wanted = names or [lib["name"] for lib in libs]
        for name in wanted:
            resp = await c.post(f"/api/libraries/{name}/scan", json={})
            if resp.status_code not in (202, 409):
                print(f"exstreamtv: {name}: {resp.json().get('error')} {resp.json().get('detail') or ''}",
                      file=sys.stderr)
                return 2
        print(f"scanning {', '.join(wanted)} on {url}")
        while True:
            await asyncio.sleep(0.5)
            libs = {lib["name"]: lib for lib in (await c.get("/api/libraries")).json()["libraries"]}
            if not any(libs[n]["scanning"] for n in wanted):
                break
        for n in wanted:
            print(_summary(libs[n]))
    return 0


async def _local(names: list[str], cfg: Config, data_dir: Path) -> int:
    from .engine.engine import LOCK_NAME

    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / LOCK_NAME, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print(f"exstreamtv: a server runs on {data_dir} but does not answer; try again", file=sys.stderr)
            return 2
        ffmpeg = find_ffmpeg(cfg.ffmpeg.path)
        sem = asyncio.Semaphore(max(1, min(4, os.cpu_count() or 1)))

        async def run(argv: list[str]) -> tuple[int, str]:
            async with sem:
                proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                            stdout=asyncio.subprocess.DEVNULL,
                                                            stderr=asyncio.subprocess.PIPE)
                try:
                    _, err = await asyncio.wait_for(proc.communicate(), cfg.ffmpeg.probe_timeout_seconds)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
                    return -1, f"timed out after {cfg.ffmpeg.probe_timeout_seconds:g}s"
                return proc.returncode or 0, err.decode("utf-8", "replace")

        clock = SystemClock()
        manager = LibraryManager(cfg.libraries, cfg.library_scan, data_dir, clock, EventLog(clock))
        manager.probe = MediaProbe(ffmpeg.path, data_dir / "probe-cache.json", run)
        manager.load()
        for name in names:
            manager.scan(name)
        t0 = time.monotonic()
        while any(manager.scanning(n) for n in names):
            await asyncio.sleep(0.5)
            if sys.stderr.isatty():
                s = [manager.scans[n].snapshot() for n in names if n in manager.scans]
                done, total = sum(x["probed"] for x in s), sum(x["to_probe"] for x in s)
                print(f"\rprobed {done}/{total} files, {time.monotonic() - t0:.0f}s", end="", file=sys.stderr)
        await manager.wait()
        if sys.stderr.isatty():
            print(file=sys.stderr)
        for lib in manager.snapshot():
            if lib["name"] in names:
                print(_summary(lib))
    return 0


def _summary(lib: dict) -> str:
    return (f"{lib['name']}: {lib['items']} item(s), {lib['problems']} skipped, {lib['warnings']} warning(s), "
            f"last scan {lib['last_scan_seconds']}s")


def run_reload(data_dir: Path, connect: str | None, token: str | None) -> int:
    if not connect:
        try:
            connect, token_found = find_local_server(data_dir)
            token = token or token_found
        except NotConnected as exc:
            print(f"exstreamtv: {exc}", file=sys.stderr)
            return 2
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.post(connect.rstrip("/") + "/api/reload", json={}, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        print(f"exstreamtv: cannot reach {connect}: {exc}", file=sys.stderr)
        return 2
    body = resp.json()
    if resp.status_code != 200 or not body.get("ok"):
        print(f"exstreamtv: reload refused: {body.get('error')}", file=sys.stderr)
        return 1
    parts = [f"{k} {', '.join(map(str, v))}" for k, v in body.items()
             if k in ("added", "removed", "changed", "libraries_rescanned") and v]
    print("reloaded: " + ("; ".join(parts) or "nothing changed")
          + (f"; needs a restart: {', '.join(body['needs_restart'])}" if body.get("needs_restart") else ""))
    return 0
