"""Scanning a library: walk its roots, probe only what is new or changed, read metadata.

A rescan looks at every file's size and mtime and at its sidecars' (NFO, artwork,
subtitles) mtimes; an item whose signature did not change is kept as it was, without
opening a file. New and changed files are probed through the process pool (the probe cache
and hard-link sharing mean a replaced file is the only real work). Deleted files leave the
library; a file that cannot be played is a problem with its reason; a bad NFO is a warning
and the metadata falls back to embedded tags, then names.
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

from ..config import LibraryConfig, normalise_language
from ..onair.media import MEDIA_EXTENSIONS, MediaError, MediaInfo, MediaProbe
from .model import Item, Library, shared_streams
from .naming import parse_episode, parse_movie, season_of_folder, tidy
from .nfo import Nfo, NfoError, read_nfo

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SUBTITLE_EXTENSIONS = (".srt", ".ass", ".ssa")


def glob_regex(pattern: str) -> re.Pattern:
    """A path glob: ``**/`` any folders (or none), ``**`` anything, ``*`` and ``?`` within a name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


@dataclass
class Found:
    path: str
    rel: PurePosixPath
    size: int
    mtime: int


@dataclass
class Walk:
    files: list[Found] = field(default_factory=list)
    dirs: dict[str, dict[str, int]] = field(default_factory=dict)  # folder -> {lowercased name: mtime}
    names: dict[str, dict[str, str]] = field(default_factory=dict)  # folder -> {lowercased name: real name}
    warnings: dict[str, str] = field(default_factory=dict)


def walk(cfg: LibraryConfig) -> Walk:
    """Every media file under the roots that passes include/exclude (runs in a thread)."""
    inc = [glob_regex(g) for g in cfg.include]
    exc = [glob_regex(g) for g in cfg.exclude]
    w = Walk()
    for root in cfg.paths:
        if not os.path.isdir(root):
            w.warnings[root] = "library folder does not exist" if not os.path.exists(root) else "not a folder"
            continue
        if not os.access(root, os.R_OK | os.X_OK):
            w.warnings[root] = "library folder cannot be read (permission denied)"
            continue

        def onerror(err: OSError) -> None:
            w.warnings[err.filename or root] = f"cannot read ({err.strerror or err})"

        for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                                 and not any(r.match(rel_dir + d + "/") or r.match(rel_dir + d) for r in exc))
            listing: dict[str, int] = {}
            names: dict[str, str] = {}
            for name in filenames:
                if name.startswith("."):
                    continue
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except OSError as err:
                    if os.path.islink(full):
                        w.warnings[full] = "broken symlink (its target is gone)"
                    else:
                        w.warnings[full] = f"cannot read ({err.strerror or err})"
                    continue
                low = name.lower()
                listing[low] = int(st.st_mtime)
                names[low] = name
                if os.path.splitext(low)[1] not in MEDIA_EXTENSIONS:
                    continue
                rel = rel_dir + name
                if any(r.match(rel) for r in exc) or (inc and not any(r.match(rel) for r in inc)):
                    continue
                w.files.append(Found(full, PurePosixPath(rel), st.st_size, int(st.st_mtime)))
            w.dirs[dirpath] = listing
            w.names[dirpath] = names
    return w


@dataclass
class Sidecars:
    nfo: list[str] = field(default_factory=list)  # most specific first
    show_nfo: str | None = None
    poster: str | None = None
    fanart: str | None = None
    subtitles: list[tuple[str, str, bool]] = field(default_factory=list)
    signature: tuple = ()


def sidecars(f: Found, kind: str, w: Walk) -> Sidecars:
    """The NFO, artwork and subtitle files that go with a media file (from the walk's listings)."""
    folder = os.path.dirname(f.path)
    stem = os.path.splitext(os.path.basename(f.path))[0].lower()
    here = w.dirs.get(folder, {})
    used: list[tuple[str, int]] = []
    sc = Sidecars()

    def pick(d: str, *names: str) -> str | None:
        listing = w.dirs.get(d, {})
        for n in names:
            if n in listing:
                used.append((os.path.join(d, w.names[d][n]), listing[n]))
                return os.path.join(d, w.names[d][n])
        return None

    def images(d: str, *stems: str) -> str | None:
        return pick(d, *[s + ext for s in stems for ext in IMAGE_EXTENSIONS])

    own_folder = len(f.rel.parts) > 1
    if kind == "movie":
        sc.nfo = [p for p in (pick(folder, stem + ".nfo"), pick(folder, "movie.nfo") if own_folder else None) if p]
        sc.poster = images(folder, stem + "-poster", stem) or (
            images(folder, "poster", "folder", "movie", "cover") if own_folder else None)
        sc.fanart = images(folder, stem + "-fanart") or (images(folder, "fanart") if own_folder else None)
    elif kind == "episode":
        sc.nfo = [p for p in (pick(folder, stem + ".nfo"),) if p]
        show_dir = folder
        season = None
        if season_of_folder(os.path.basename(folder)) is not None:
            season = season_of_folder(os.path.basename(folder))
            show_dir = os.path.dirname(folder)
        if own_folder:
            sc.show_nfo = pick(show_dir, "tvshow.nfo")
        season_poster = None
        if season is not None:
            kodi = [f"season{season:02d}-poster"] + (["season-specials-poster"] if season == 0 else [])
            season_poster = images(folder, "poster", "folder") or images(show_dir, *kodi)
        sc.poster = images(folder, stem + "-thumb") or season_poster or (
            images(show_dir, "poster", "folder") if own_folder else None)
        sc.fanart = images(show_dir, "fanart") if own_folder else None
    else:
        sc.nfo = [p for p in (pick(folder, stem + ".nfo"),) if p]
        sc.poster = images(folder, stem + "-thumb", stem, stem + "-poster")
    for low, mtime in here.items():
        if low.startswith(stem + ".") and low.endswith(SUBTITLE_EXTENSIONS):
            parts = low[len(stem) + 1:].rsplit(".", 1)[0].split(".") if low.count(".") > stem.count(".") + 1 else []
            lang = next((normalise_language(p) for p in parts if p.isalpha() and 2 <= len(p) <= 3), "und")
            sc.subtitles.append((os.path.join(folder, w.names[folder][low]), lang, "forced" in parts))
            used.append((os.path.join(folder, w.names[folder][low]), mtime))
    sc.signature = tuple(sorted(used))
    return sc


class ScanState:
    """Progress of one library's scan: files probed of those to probe, rate, ETA."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.started = now()
        self.total = 0
        self.done = 0
        self.seen = 0  # files found by the walk
        self.finished: float | None = None
        self.phase = "walking"

    def snapshot(self) -> dict:
        span = (self.finished or self.now()) - self.started
        rate = self.done / span if span > 0 else 0.0
        left = self.total - self.done
        return {"phase": self.phase, "files": self.seen, "to_probe": self.total, "probed": self.done,
                "rate_per_second": round(rate, 2), "eta_seconds": round(left / rate, 1) if rate > 0 and left else None,
                "elapsed_seconds": round(span, 2)}


async def scan_library(cfg: LibraryConfig, previous: Library, probe: MediaProbe, max_nfo_bytes: int,
                       state: ScanState, concurrency: int = 4) -> Library:
    """A new Library for ``cfg``; ``previous`` supplies the items whose files did not change."""
    w = await asyncio.to_thread(walk, cfg)
    state.seen = len(w.files)
    kind = {"movies": "movie", "shows": "episode", "other": "other"}[cfg.kind]
    lib = Library(cfg.name, cfg.kind)
    lib.warnings.update(w.warnings)
    todo: list[tuple[Found, Sidecars]] = []
    for f in w.files:
        sc = sidecars(f, kind, w)
        old = previous.items.get(f.path)
        if old is not None and old.signature == (f.size, f.mtime, sc.signature):
            lib.items[f.path] = old
            for path, _ in old.sidecars:  # what was wrong with its NFO still is
                if path in previous.warnings:
                    lib.warnings[path] = previous.warnings[path]
        else:
            todo.append((f, sc))
    state.total = len(todo)
    state.phase = "probing"
    sem = asyncio.Semaphore(concurrency)
    nfo_cache: dict[str, Nfo | NfoError] = {}

    async def one(f: Found, sc: Sidecars) -> None:
        async with sem:
            try:
                info = await probe.probe(f.path)
            except MediaError as exc:
                lib.problems[f.path] = exc.reason
                return
            finally:
                state.done += 1
        item = make_item(cfg.name, kind, f, sc, info, max_nfo_bytes, nfo_cache, lib.warnings)
        lib.items[f.path] = item

    await asyncio.gather(*(one(f, sc) for f, sc in todo))
    state.phase = "done"
    state.finished = state.now()
    changed = set(lib.items) != set(previous.items) or any(f.path in lib.items for f, _ in todo)
    lib.version = previous.version + (1 if changed else 0)
    return lib


def _nfo(path: str, max_bytes: int, cache: dict, warnings: dict[str, str]) -> Nfo | None:
    hit = cache.get(path)
    if hit is None:
        try:
            hit = read_nfo(path, max_bytes)
        except NfoError as exc:
            hit = exc
        cache[path] = hit
    if isinstance(hit, NfoError):
        warnings[path] = f"NFO ignored: {hit}"
        return None
    return hit


def make_item(library: str, kind: str, f: Found, sc: Sidecars, info: MediaInfo, max_nfo: int,
              nfo_cache: dict, warnings: dict[str, str]) -> Item:
    """Metadata in order of precedence: NFO sidecars, then embedded tags, then names."""
    tag = info.tag
    it = Item(f.path, library, kind, info.duration, info.has_video, info.has_audio, info.cover,
              streams=shared_streams(info.streams),
              chapters=info.chapters, gop=info.gop,
              subtitle_files=tuple(sc.subtitles), size=f.size, mtime=f.mtime, sidecars=sc.signature,
              poster=sc.poster, fanart=sc.fanart)
    nfo = next((n for n in (_nfo(p, max_nfo, nfo_cache, warnings) for p in sc.nfo) if n is not None), None)
    named_title = info.title == tidy(Path(f.path).stem) or info.title == Path(f.path).stem.replace("_", " ").strip()
    embedded_title = "" if named_title else info.title
    it.plot = (nfo.plot if nfo else "") or info.description
    it.genres = (nfo.genres if nfo and nfo.genres else ()) or tuple(g.strip() for g in tag("genre").split(",")
                                                                       if g.strip())
    it.studios = nfo.studios if nfo else ()
    it.mpaa = nfo.mpaa if nfo else ""
    it.rating = nfo.rating if nfo else None
    date = tag("date")
    if kind == "episode":
        name = parse_episode(f.rel)
        show_nfo = _nfo(sc.show_nfo, max_nfo, nfo_cache, warnings) if sc.show_nfo else None
        it.show = ((show_nfo.title if show_nfo else "") or (nfo.showtitle if nfo else "") or tag("show")
                   or (name.show if name else "") or tidy(Path(f.path).stem))
        it.title = it.show
        it.season = (nfo.season if nfo and nfo.season is not None else None)
        if it.season is None and tag("season_number").isdigit():
            it.season = int(tag("season_number"))
        if it.season is None and name:
            it.season = name.season
        eps: tuple[int, ...] = nfo.episodes if nfo and nfo.episodes else ()
        if not eps and tag("episode_sort").isdigit():
            eps = (int(tag("episode_sort")),)
        if not eps and name:
            eps = name.episodes
        it.episodes = eps
        it.absolute = name.absolute if name and not eps else None
        titles = [t for t in (nfo.titles if nfo else ()) if t]
        it.episode_title = (" / ".join(titles) if titles else "") or embedded_title or (name.title if name else "")
        it.aired = (nfo.aired if nfo else "") or (date[:10] if re.match(r"\d{4}-\d\d-\d\d", date) else "")
        if show_nfo is not None:
            it.genres = it.genres or show_nfo.genres
            it.studios = it.studios or show_nfo.studios
            it.mpaa = it.mpaa or show_nfo.mpaa
            it.rating = it.rating if it.rating is not None else show_nfo.rating
            it.year = show_nfo.year
        it.year = (int(it.aired[:4]) if it.aired else None) or it.year
    elif kind == "movie":
        name = parse_movie(f.rel)
        it.title = (nfo.title if nfo else "") or embedded_title or name.title
        it.year = (nfo.year if nfo else None) or (int(date[:4]) if re.match(r"\d{4}", date) else None) or name.year
        it.aired = (nfo.premiered if nfo else "") or (date[:10] if re.match(r"\d{4}-\d\d-\d\d", date) else "")
    else:
        it.title = (nfo.title if nfo else "") or embedded_title or tidy(Path(f.path).stem)
        it.year = nfo.year if nfo else None
    return it
