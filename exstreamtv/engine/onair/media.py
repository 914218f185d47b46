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
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Awaitable, Callable

log = logging.getLogger("exstreamtv.media")

VIDEO_EXTENSIONS = {".mp4", ".mkv", ".avi", ".mov", ".ts", ".m2ts", ".mts", ".m4v", ".webm", ".flv", ".wmv", ".mpg",
                    ".mpeg", ".ogv", ".3gp", ".vob", ".divx", ".asf", ".wtv"}
AUDIO_EXTENSIONS = {".mp3", ".m4a", ".flac", ".ogg", ".oga", ".opus", ".wav", ".aac", ".wma", ".ac3", ".mka", ".aiff",
                    ".aif", ".alac", ".ape", ".wv"}
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS
CACHE_VERSION = "5"  # bump when MediaInfo gains fields: older entries are probed again


class MediaError(Exception):
    """A media file that cannot be played, with the reason (``str`` is ``path: reason``)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class MediaInfo:
    path: str
    duration: float
    has_video: bool
    has_audio: bool
    title: str
    description: str = ""
    cover: bool = False  # music: the only picture is an attached cover image
    # every stream: {"index", "kind" (video/audio/subtitle), "codec", "language", "default", "forced",
    # and for video "width"/"height"}; stream choice (audio language, subtitles) reads these
    streams: tuple = ()
    tags: tuple = ()  # embedded tags as (key, value) pairs: show, season_number, episode_sort, date, genre, ...
    chapters: tuple = ()  # chapter start times (seconds, after 0): where mid-roll filler may go
    gop: float | None = None  # H.264: the longest keyframe interval in the first 30 s (copy decisions)

    def tag(self, key: str) -> str:
        return next((v for k, v in self.tags if k == key), "")

    def of_kind(self, kind: str) -> list[dict]:
        return [st for st in self.streams if st["kind"] == kind]


def scan_lineup(entries: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files, problems): files as given; folders expanded to their media files (video and
    audio, recursively, sorted by path). Problems are ``(path, reason)``: a missing entry, a
    broken symlink, a folder without media. Nothing here raises."""
    out: list[str] = []
    problems: list[tuple[str, str]] = []
    for entry in entries:
        p = Path(entry)
        try:
            if p.is_dir():
                found = []
                for f in p.rglob("*"):
                    if f.suffix.lower() not in MEDIA_EXTENSIONS:
                        continue
                    if f.is_symlink() and not f.exists():
                        problems.append((str(f), "broken symlink (its target is gone)"))
                    elif f.is_file():
                        found.append(str(f))
                if not found:
                    problems.append((str(p), "folder has no media files"))
                out.extend(sorted(found))
            elif p.is_symlink() and not p.exists():
                problems.append((str(p), "broken symlink (its target is gone)"))
            elif not p.exists():
                problems.append((str(p), "file or folder does not exist"))
            else:
                out.append(str(p))
        except OSError as exc:
            problems.append((str(p), f"cannot read ({exc.strerror or exc})"))
    return out, problems


_DURATION = re.compile(r"Duration:\s*(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #0:\d+.*?: (Video|Audio|Subtitle|Data)", re.M)
_META = re.compile(r"^\s{4}(title|description|comment|synopsis|show|episode_id|season_number|episode_sort|date|year|"
                   r"genre|album_artist|artist|album)\s*:\s*(.*)$", re.M | re.I)
_STREAM_DETAIL = re.compile(r"^\s*Stream #0:(\d+)(?:\[0x[0-9a-fA-F]+\])?(?:\((\w+)\))?: (Video|Audio|Subtitle): "
                            r"([A-Za-z0-9_]+)(.*)$", re.M)
_SIZE = re.compile(r", (\d{2,5})x(\d{2,5})")
_PROFILE = re.compile(r"^ \(([A-Za-z0-9 ]+)\)")
_PIXFMT = re.compile(r"\), (yuv\w+|nv12|gray\w*|rgb\w+|bgr\w+)[(,]| (yuv\w+|nv12)[(,]")
_FPS = re.compile(r", ([\d.]+) fps")
_AUDIO = re.compile(r", (\d+) Hz, ([\w.()]+)")
_KEY_TIME = re.compile(r"pts_time:\s*(-?[\d.]+)")
_CHAPTER = re.compile(r"Chapter #\d+:\d+: start (-?[\d.]+), end (-?[\d.]+)")
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text", "microdvd", "subviewer", "stl", "sami"}
BITMAP_SUBTITLES = {"hdmv_pgs_subtitle", "pgssub", "dvd_subtitle", "dvdsub", "dvb_subtitle", "dvbsub", "xsub"}


def parse_streams(stderr: str) -> tuple:
    """The input's streams, in file order, with language and dispositions."""
    head = stderr.split("Output #0", 1)[0]
    out = []
    for m in _STREAM_DETAIL.finditer(head):
        index, lang, kind, codec, rest = m.groups()
        if kind == "Video" and "(attached pic)" in rest:
            continue
        st = {"index": int(index), "kind": kind.lower(), "codec": codec.lower(),
              "language": (lang or "und").lower(), "default": "(default)" in rest, "forced": "(forced)" in rest}
        if kind == "Video":
            size = _SIZE.search(rest)
            if size:
                st["width"], st["height"] = int(size.group(1)), int(size.group(2))
            prof, pix, fps = _PROFILE.match(rest), _PIXFMT.search(rest), _FPS.search(rest)
            st["profile"] = prof.group(1) if prof else ""
            st["pix_fmt"] = (pix.group(1) or pix.group(2)) if pix else ""
            st["fps"] = float(fps.group(1)) if fps else 0.0
        if kind == "Audio":
            a = _AUDIO.search(rest)
            if a:
                st["sample_rate"], st["layout"] = int(a.group(1)), a.group(2)
        out.append(st)
    return tuple(out)


def _tail(path: str, stderr: str) -> str:
    """FFmpeg's last line without the file name it repeats (so messages name the file once)."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "no output"
    last = lines[-1].strip()
    for prefix in (f"{path}: ", "[in#0 @ ", "Error opening input file "):
        if last.startswith(prefix):
            last = last.split(": ", 1)[-1] if prefix != "Error opening input file " else last
    return last.replace(path, "the file")


def parse_probe_output(path: str, stderr: str) -> MediaInfo:
    """Turn ``ffmpeg -i`` output into MediaInfo, or raise MediaError naming the problem."""
    tail = _tail(path, stderr)
    m = _DURATION.search(stderr)
    streams = [(kind, line) for line in stderr.splitlines() for kind in _STREAM.findall(line)]
    kinds = [k for k, line in streams if not (k == "Video" and "(attached pic)" in line)]
    cover = any(k == "Video" and "(attached pic)" in line for k, line in streams)
    if "Invalid data found" in stderr or "could not find codec parameters" in stderr.lower() and not m:
        raise MediaError(path, f"not a playable media file ({tail})")
    if not m:
        raise MediaError(path, f"no duration found ({tail})")
    duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if duration <= 0:
        raise MediaError(path, "duration is zero")
    if "Video" not in kinds and "Audio" not in kinds:
        raise MediaError(path, "no video or audio stream")
    meta: dict[str, str] = {}
    header = stderr.split("Duration:")[0]
    for key, value in _META.findall(header):
        meta.setdefault(key.lower(), value.strip())
    title = meta.get("title") or _file_title(path)
    desc = meta.get("description") or meta.get("synopsis") or meta.get("comment") or ""
    tags = tuple((k, v) for k, v in meta.items() if k not in ("title", "description", "comment", "synopsis") and v)
    chapters = tuple(sorted({round(float(a), 3) for a, _ in _CHAPTER.findall(stderr.split("Output #0", 1)[0])
                             if 1.0 < float(a) < duration - 1.0}))
    return MediaInfo(path, duration, "Video" in kinds, "Audio" in kinds, title, desc, cover and "Video" not in kinds,
                     parse_streams(stderr), tags, chapters)


def _file_title(path: str) -> str:
    return Path(path).stem.replace("_", " ").replace(".", " ").strip()


def _info(hit: dict) -> MediaInfo:
    d = dict(hit)
    d["streams"] = tuple(d.get("streams") or ())
    d["tags"] = tuple(tuple(t) for t in d.get("tags") or ())
    d["chapters"] = tuple(d.get("chapters") or ())
    return MediaInfo(**d)


RunProbe = Callable[[list[str]], Awaitable[tuple[int, str]]]


class MediaProbe:
    """Probes files with ``ffmpeg -i`` and caches the results (and the failures) on disk.

    Entries are keyed by path, size and mtime, so a replaced file is probed again. The cache
    file is written in batches (``flush``, called by the engine every few seconds and at the
    end of a scan), never once per file."""

    def __init__(self, ffmpeg_path: str, cache_file: Path | None, run: RunProbe) -> None:
        self.ffmpeg_path = ffmpeg_path
        self.cache_file = cache_file
        self.run = run
        self._cache: dict[str, dict] = {}
        self._dirty = False
        self.probed = 0  # FFmpeg probes run (cache misses)
        if cache_file and cache_file.exists():
            try:
                data = json.loads(cache_file.read_text())
                self._cache = data if isinstance(data, dict) else {}
            except (OSError, ValueError):
                log.warning("probe cache %s unreadable; starting empty", cache_file)
        self._by_path = {k.split("|", 1)[1].rsplit("|", 2)[0]: k for k in self._cache if "|" in k}
        self._by_inode: dict[tuple[int, int, int, int], str] = {}  # hard links probed once (this run)

    @staticmethod
    def _key(path: str, st: os.stat_result) -> str:
        return f"{CACHE_VERSION}|{path}|{st.st_size}|{int(st.st_mtime)}"

    def cached(self, path: str) -> MediaInfo | None:
        """The cached result for ``path`` as it is on disk now (raises MediaError for a cached failure)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        hit = self._cache.get(self._key(path, st))
        if hit is None:
            return None
        if "error" in hit:
            raise MediaError(path, hit["error"])
        return _info(hit)

    async def probe(self, path: str) -> MediaInfo:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise MediaError(path, f"cannot read file ({exc.strerror})") from None
        key = self._key(path, st)
        hit = self._cache.get(key)
        if hit is not None:
            if "error" in hit:
                raise MediaError(path, hit["error"])
            return _info(hit)
        same = self._by_inode.get((st.st_dev, st.st_ino, st.st_size, int(st.st_mtime)))
        if same is not None and same != key and same in self._cache and "error" not in self._cache[same]:
            # a hard link of a file already probed: the same bytes, so the same streams and length
            src = _info(self._cache[same])
            named = src.title == _file_title(src.path)  # titled from its name, not from a tag
            info = dataclasses.replace(src, path=path, title=_file_title(path) if named else src.title)
            self._remember(key, asdict(info), st)
            return info
        if st.st_size == 0:
            self._remember(key, {"error": "empty file (0 bytes)"})
            raise MediaError(path, "empty file (0 bytes)")
        rc, stderr = await self.run([self.ffmpeg_path, "-hide_banner", "-nostdin", "-i", path])
        self.probed += 1
        if rc < 0 and stderr.startswith("timed out"):
            raise MediaError(path, f"probe {stderr}")  # not cached: may work next time
        try:
            info = parse_probe_output(path, stderr)
        except MediaError as exc:
            self._remember(key, {"error": exc.reason})
            raise
        if any(v["codec"] == "h264" for v in info.of_kind("video")):
            info = dataclasses.replace(info, gop=await self._gop(path))
        self._remember(key, asdict(info), st)
        return info

    async def _gop(self, path: str) -> float | None:
        """The longest keyframe interval in the first 30 s: only keyframes are decoded (fast)."""
        rc, err = await self.run([self.ffmpeg_path, "-hide_banner", "-nostdin", "-skip_frame", "nokey", "-i", path,
                                  "-t", "30", "-map", "0:v:0", "-vf", "showinfo", "-f", "null", "-"])
        keys = [float(x) for x in _KEY_TIME.findall(err)]
        if rc != 0 or len(keys) < 2:
            return None
        return round(max(b - a for a, b in zip(keys, keys[1:])), 3)

    def forget(self, paths: set[str]) -> int:
        """Drop these files' entries (a library's saved state holds them now): a 20,000-file library
        is not kept twice in memory. Returns how many were dropped."""
        gone = [k for k in self._cache if k.split("|", 1)[1].rsplit("|", 2)[0] in paths] if paths else []
        for k in gone:
            del self._cache[k]
        for p in paths:
            self._by_path.pop(p, None)
        if gone:
            self._by_inode.clear()
            self._dirty = True
        return len(gone)

    def correct_duration(self, path: str, duration: float) -> None:
        """The file really ends earlier than probed (an incomplete download): remember that."""
        try:
            key = self._key(path, os.stat(path))
        except OSError:
            return
        hit = self._cache.get(key)
        if hit is not None and "error" not in hit and duration > 0:
            hit["duration"] = round(duration, 3)
            self._dirty = True

    def _remember(self, key: str, value: dict, st: os.stat_result | None = None) -> None:
        if st is not None:
            self._by_inode[(st.st_dev, st.st_ino, st.st_size, int(st.st_mtime))] = key
        path = key.split("|", 1)[1].rsplit("|", 2)[0]
        old = self._by_path.get(path)
        if old is not None and old != key:
            self._cache.pop(old, None)  # the file was replaced: forget the old entry
        self._by_path[path] = key
        self._cache[key] = value
        self._dirty = True

    def flush(self) -> None:
        """Write the cache if it changed (atomically: a temporary file, then a rename)."""
        if not self.cache_file or not self._dirty:
            return
        self._dirty = False
        try:
            tmp = self.cache_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._cache))
            tmp.replace(self.cache_file)
        except OSError as exc:
            self._dirty = True
            log.warning("cannot write probe cache %s: %s", self.cache_file, exc)
