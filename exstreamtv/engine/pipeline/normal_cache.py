"""The normalised cache: programmes transcoded once, in the background, to files that fit the
output profile, so channels air them by copy (a few percent of a core instead of an encode).

Opt-in per channel (``cache: true``) or per library. Work is queued soonest-airing first and
runs one file at a time at the lowest CPU priority (``nice 19``), through the process pool's
background budget (never a channel's spawn tokens), and pauses while any playing channel
runs below ``pause_below_speed`` x real time. A file is written as ``.part`` and only
becomes an entry once FFmpeg ended cleanly and its length was checked; at air time the
entry's size is checked again, and a file that changed or vanished is dropped and the
programme is encoded from its source. The total size is kept under ``max_gb`` by evicting
the entries aired longest ago.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..ffmpeg.command import FileSource, program_command

if TYPE_CHECKING:
    from ..engine import Engine
    from ..onair.schedule import ScheduleItem

log = logging.getLogger("exstreamtv.cache")


class NormalisedCache:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self.cfg = engine.config.cache
        self.dir = engine.data_dir / "cache"
        self.index: dict[str, dict[str, Any]] = {}  # source path -> entry
        self.queue: list["ScheduleItem"] = []
        self._queued: set[str] = set()
        self.failed: dict[str, str] = {}
        self.hits = 0
        self.misses = 0
        self.paused = False
        self.current: str | None = None
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()

    # ------------------------------------------------------------ state
    def load(self) -> None:
        try:
            data = json.loads((self.dir / "index.json").read_text())
            self.index = {k: v for k, v in data.items() if isinstance(v, dict) and "file" in v}
        except (OSError, ValueError):
            self.index = {}
        for part in self.dir.glob("*.part.mkv") if self.dir.exists() else []:
            part.unlink(missing_ok=True)  # half-written by an earlier run: never aired

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "index.json.tmp"
        tmp.write_text(json.dumps(self.index))
        os.replace(tmp, self.dir / "index.json")

    @property
    def bytes(self) -> int:
        return sum(int(e.get("size", 0)) for e in self.index.values())

    # ------------------------------------------------------------ air time
    def lookup(self, item: "ScheduleItem", now: float) -> str | None:
        """The cached file of ``item`` if it is whole and current, else None (and it is queued)."""
        e = self.index.get(item.path)
        if e is not None:
            try:
                src, out = os.stat(item.path), os.stat(e["file"])
                whole = out.st_size == e["size"] and (src.st_size, int(src.st_mtime)) == (e["src_size"], e["src_mtime"])
            except OSError:
                whole = False
            if whole:
                self.hits += 1
                e["last_aired"] = now
                return e["file"]
            self.engine.events.emit("cache_dropped", f"cache: {e['file']} is not the programme any more (changed, "
                                    f"cut short or gone): {item.path} is encoded from its source", None,
                                    level=logging.WARNING, path=item.path)
            self.index.pop(item.path, None)
            try:
                Path(e["file"]).unlink(missing_ok=True)
            except OSError:
                pass
            self._save()
        self.misses += 1
        self.want([item])
        return None

    # ------------------------------------------------------------ background work
    def want(self, items: list["ScheduleItem"]) -> None:
        for it in items:
            if it.path and it.path not in self.index and it.path not in self._queued and it.path not in self.failed:
                self.queue.append(it)
                self._queued.add(it.path)
        if self.queue:
            self._wake.set()

    def start(self) -> None:
        self.load()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="normalised-cache")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _slow_channel(self) -> bool:
        for ch in self.engine.channels.values():
            if ch.running and ch.state.value == "playing":
                speed = ch.windowed_speed(5.0)
                if speed is not None and speed < self.cfg.pause_below_speed:
                    return True
        return False

    async def _run(self) -> None:
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._slow_channel():  # a channel needs the CPU: wait
                self.paused = True
                await asyncio.sleep(2.0)
                continue
            self.paused = False
            item = self.queue.pop(0)
            self._queued.discard(item.path)
            self.current = item.path
            try:
                await self._transcode(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad file never stops the cache
                self.failed[item.path] = str(exc)
                log.warning("cache: %s: %s", item.path, exc)
            finally:
                self.current = None

    async def _transcode(self, item: "ScheduleItem") -> None:
        e = self.engine
        src = os.stat(item.path)
        key = hashlib.sha1(f"{item.path}|{src.st_size}|{int(src.st_mtime)}".encode()).hexdigest()[:20]
        self.dir.mkdir(parents=True, exist_ok=True)
        part, final = self.dir / f"{key}.part.mkv", self.dir / f"{key}.mkv"
        argv = program_command(e.ffmpeg_path, FileSource(item.path, 0.0, None, item.has_video, item.has_audio,
                                                         item.cover), e.profile, progress=False)
        # the programme command writes MPEG-TS to a pipe: here Matroska to a file (exact seeks by copy)
        argv = ["nice", "-n", "19"] + argv[:argv.index("-pes_payload_size")] + ["-f", "matroska", "-y", str(part)]
        mp = await e.pool.spawn(argv, channel_id=None, role="cache", background=True)
        try:
            _, err = await mp.proc.communicate()
        finally:
            if mp.returncode is None:
                await e.pool.terminate(mp, "cancelled")
            e.pool.release(mp)
        rc = mp.proc.returncode
        if rc != 0 or not part.exists():
            part.unlink(missing_ok=True)
            raise RuntimeError(f"transcode failed (exit {rc}): {err.decode('utf-8', 'replace').strip()[-200:]}")
        rc, out = await e._run_tool("probe")([e.ffmpeg_path, "-hide_banner", "-nostdin", "-i", str(part)])
        from ..onair.media import MediaError, parse_probe_output

        try:
            info = parse_probe_output(str(part), out)
        except MediaError as exc:
            part.unlink(missing_ok=True)
            raise RuntimeError(f"the cached file does not read back: {exc.reason}") from None
        if abs(info.duration - item.duration) > 1.5:
            part.unlink(missing_ok=True)
            raise RuntimeError(f"the cached file lasts {info.duration:.1f}s, the source {item.duration:.1f}s")
        os.replace(part, final)
        self.index[item.path] = {"file": str(final), "size": final.stat().st_size, "src_size": src.st_size,
                                 "src_mtime": int(src.st_mtime), "duration": info.duration, "last_aired": 0.0,
                                 "done_at": e.clock.time()}
        self._evict()
        self._save()
        e.events.emit("cache_done", f"cache: {Path(item.path).name} normalised ({final.stat().st_size >> 20} MiB)",
                      None, path=item.path)

    def _evict(self) -> None:
        limit = int(self.cfg.max_gb * (1 << 30))
        while self.bytes > limit and len(self.index) > 1:
            path, e = min(self.index.items(), key=lambda kv: kv[1].get("last_aired", 0.0))
            self.index.pop(path)
            Path(e["file"]).unlink(missing_ok=True)
            self.engine.events.emit("cache_evicted", f"cache: {Path(path).name} evicted (least recently aired; "
                                    f"cache over {self.cfg.max_gb:g} GB)", None, path=path)

    def snapshot(self) -> dict[str, Any]:
        total = self.hits + self.misses
        return {"items": len(self.index), "queued": len(self.queue), "bytes": self.bytes,
                "max_bytes": int(self.cfg.max_gb * (1 << 30)), "hits": self.hits, "misses": self.misses,
                "hit_rate": round(self.hits / total, 3) if total else None, "paused": self.paused,
                "working_on": self.current, "failed": len(self.failed)}
