"""Media files: folder scanning and probing (duration, streams, title) with a persistent cache.

Probing uses ``ffmpeg -i`` (the imageio-ffmpeg wheel ships no ffprobe) through the process
pool like every other FFmpeg. Results are cached by path, size and mtime, so a restart does
not probe a library again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Awaitable, Callable

log = logging.getLogger("exstreamtv.media")

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".avi", ".mov", ".ts", ".m2ts", ".m4v", ".webm", ".flv", ".wmv", ".mpg",
                    ".mpeg", ".ogv", ".3gp"}


class MediaError(Exception):
    """A media file that cannot be played, with the reason."""


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float
    has_video: bool
    has_audio: bool
    title: str
    description: str = ""


def scan_lineup(entries: list[str]) -> list[str]:
    """Files as given; folders expanded to their video files (recursively, sorted by path)."""
    out: list[str] = []
    for entry in entries:
        p = Path(entry)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                log.warning("folder %s has no video files", p)
            out.extend(found)
        else:
            out.append(str(p))
    return out


_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: (Video|Audio|Subtitle|Data)", re.M)
_META = re.compile(r"^\s{4}(title|description|comment|show|episode_id|season_number|episode_sort)\s*:\s*(.*)$",
                   re.M | re.I)


def parse_probe_output(path: str, stderr: str) -> MediaInfo:
    """Turn ``ffmpeg -i`` output into MediaInfo, or raise MediaError naming the problem."""
    tail = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
    m = _DURATION.search(stderr)
    kinds = _STREAM.findall(stderr)
    if "Invalid data found" in stderr or "could not find codec parameters" in stderr.lower() and not m:
        raise MediaError(f"{path}: not a playable media file ({tail})")
    if not m:
        raise MediaError(f"{path}: no duration found ({tail})")
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if duration <= 0:
        raise MediaError(f"{path}: duration is zero")
    if "Video" not in kinds and "Audio" not in kinds:
        raise MediaError(f"{path}: no video or audio stream")
    meta: dict[str, str] = {}
    header = stderr.split("Duration:")[0]
    for key, value in _META.findall(header):
        meta.setdefault(key.lower(), value.strip())
    title = meta.get("title") or Path(path).stem.replace("_", " ").replace(".", " ").strip()
    desc = meta.get("description") or meta.get("comment") or ""
    return MediaInfo(path, duration, "Video" in kinds, "Audio" in kinds, title, desc)


RunProbe = Callable[[list[str]], Awaitable[tuple[int, str]]]


class MediaProbe:
    """Probes files with ``ffmpeg -i`` and caches the results on disk."""

    def __init__(self, ffmpeg_path: str, cache_file: Path | None, run: RunProbe) -> None:
        self.ffmpeg_path = ffmpeg_path
        self.cache_file = cache_file
        self.run = run
        self._cache: dict[str, dict] = {}
        if cache_file and cache_file.exists():
            try:
                self._cache = json.loads(cache_file.read_text())
            except (OSError, ValueError):
                log.warning("probe cache %s unreadable; starting empty", cache_file)

    @staticmethod
    def _key(path: str) -> str:
        st = os.stat(path)
        return f"{path}|{st.st_size}|{int(st.st_mtime)}"

    async def probe(self, path: str) -> MediaInfo:
        try:
            key = self._key(path)
        except OSError as exc:
            raise MediaError(f"{path}: cannot read file ({exc.strerror})") from None
        hit = self._cache.get(key)
        if hit:
            return MediaInfo(**hit)
        rc, stderr = await self.run([self.ffmpeg_path, "-hide_banner", "-nostdin", "-i", path])
        info = parse_probe_output(path, stderr)
        self._cache[key] = asdict(info)
        self._save()
        return info

    def _save(self) -> None:
        if not self.cache_file:
            return
        try:
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._cache))
            tmp.replace(self.cache_file)
        except OSError as exc:
            log.warning("cannot write probe cache %s: %s", self.cache_file, exc)
