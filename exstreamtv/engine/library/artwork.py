"""Artwork beside the media (posters, thumbs), served at stable URLs, resized once.

A poster's URL is ``/artwork/<key>.jpg`` where the key is a hash of the file's path and
mtime: it stays the same while the picture does, and changes when it is replaced (so a
client's cache never shows a stale one). The first request renders a copy at most
``WIDTH`` pixels wide with FFmpeg through the process pool (single flight), kept in the data
dir; later ones read that copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Awaitable, Callable, Iterable

from .model import Item

WIDTH = 400


class ArtworkMissing(Exception):
    pass


def artwork_key(path: str, mtime: int) -> str:
    return hashlib.sha1(f"{path}|{mtime}".encode()).hexdigest()[:20]


class Artwork:
    def __init__(self, cache_dir: Path, ffmpeg_path: Callable[[], str],
                 run: Callable[[list[str]], Awaitable[tuple[int, str]]]) -> None:
        self.dir = cache_dir
        self.ffmpeg_path = ffmpeg_path
        self.run = run
        self._by_key: dict[str, str] = {}
        self._key_of: dict[str, str] = {}
        self._renders: dict[str, asyncio.Future] = {}
        self.renders = 0

    def register(self, items: Iterable[Item]) -> None:
        """Make every item's poster resolvable (called after loading and after each scan)."""
        for it in items:
            for path in (it.poster, it.fanart):
                if not path:
                    continue
                mtime = next((m for p, m in it.sidecars if p == path), 0)
                key = artwork_key(path, mtime)
                self._by_key[key] = path
                self._key_of[path] = key

    def key_of(self, path: str) -> str | None:
        return self._key_of.get(path)

    async def get(self, key: str) -> bytes:
        path = self._by_key.get(key)
        if path is None:
            raise ArtworkMissing(f"no artwork {key}")
        out = self.dir / f"{key}.jpg"
        if not out.exists():
            pending = self._renders.get(key)
            if pending is None:
                pending = asyncio.ensure_future(self._render(path, out))
                self._renders[key] = pending
                pending.add_done_callback(lambda _f: self._renders.pop(key, None))
            await asyncio.shield(pending)
        return await asyncio.to_thread(out.read_bytes)

    async def _render(self, path: str, out: Path) -> None:
        if not os.path.isfile(path):
            raise ArtworkMissing(f"{path}: the picture is gone")
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp.jpg")
        argv = [self.ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", path,
                "-vf", f"scale='min({WIDTH},iw)':-2", "-frames:v", "1", "-q:v", "3", "-f", "image2", str(tmp)]
        try:
            rc, err = await self.run(argv)
            if rc != 0 or not tmp.exists() or tmp.stat().st_size == 0:
                raise ArtworkMissing(f"{path}: not a picture FFmpeg can read ({err.strip()[-160:]})")
            os.replace(tmp, out)
            self.renders += 1
        finally:
            tmp.unlink(missing_ok=True)
