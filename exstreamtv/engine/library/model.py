"""The library model: items (a movie, an episode, other media) with their metadata, and a
library's items in library order. Plain data: the scanner makes it, the schedule and the
guide read it, the state file keeps it."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from typing import Any


_STREAMS: dict[tuple, dict] = {}


def shared_streams(streams) -> tuple:
    """One dict per distinct stream description (a library's files mostly share a few): 20,000
    items then hold references, not 40,000 copies."""
    out = []
    for st in streams:
        key = tuple(sorted(st.items()))
        hit = _STREAMS.get(key)
        if hit is None:
            hit = _STREAMS[key] = {k: (sys.intern(v) if isinstance(v, str) else v) for k, v in st.items()}
        out.append(hit)
    return tuple(out)


_TUPLES: dict[tuple, tuple] = {}


def _shared_tuple(t: tuple) -> tuple:
    return _TUPLES.setdefault(t, t)


@dataclass(slots=True)
class Item:
    path: str
    library: str
    kind: str  # movie, episode, other
    duration: float
    has_video: bool = True
    has_audio: bool = True
    cover: bool = False
    title: str = ""  # the programme: a movie's title, an episode's show
    episode_title: str = ""
    show: str = ""
    season: int | None = None
    episodes: tuple[int, ...] = ()
    absolute: int | None = None
    plot: str = ""
    year: int | None = None
    aired: str = ""  # YYYY-MM-DD: first aired (episode) or premiered (movie)
    genres: tuple[str, ...] = ()
    studios: tuple[str, ...] = ()
    mpaa: str = ""
    rating: float | None = None
    poster: str | None = None  # artwork files beside the media
    fanart: str | None = None
    streams: tuple = ()
    subtitle_files: tuple = ()  # (path, language, forced) of sidecar subtitle files
    chapters: tuple = ()  # chapter starts (mid-roll points)
    gop: float | None = None  # H.264 keyframe spacing
    size: int = 0
    mtime: int = 0
    sidecars: tuple = ()  # (path, mtime) of the NFO and artwork files it was made from

    @property
    def signature(self) -> tuple:
        return (self.size, self.mtime, self.sidecars)

    def episode_label(self) -> str:
        """``S01E02`` (``S01E01-E02`` for a multi-episode file), ``E012`` for absolute numbers."""
        if self.episodes and self.season is not None:
            first = f"S{self.season:02d}E{self.episodes[0]:02d}"
            return first + (f"-E{self.episodes[-1]:02d}" if len(self.episodes) > 1 else "")
        if self.absolute is not None:
            return f"E{self.absolute:03d}"
        return ""

    def sort_key(self) -> tuple:
        if self.kind == "episode":
            return (self.show.casefold(), self.season if self.season is not None else 9999,
                    self.episodes[0] if self.episodes else (self.absolute if self.absolute is not None else 99999),
                    self.path)
        if self.kind == "movie":
            return (self.title.casefold(), self.year or 0, self.path)
        return (self.path,)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Item":
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        for k in ("episodes", "genres", "studios"):
            kw[k] = tuple(kw.get(k) or ())
        kw["streams"] = shared_streams(kw.get("streams") or ())
        kw["chapters"] = tuple(kw.get("chapters") or ())
        kw["subtitle_files"] = tuple(tuple(x) for x in kw.get("subtitle_files") or ())
        # what episodes of a show share (its NFO, poster, name, genres) is held once
        kw["sidecars"] = tuple((sys.intern(p), m) for p, m in kw.get("sidecars") or ())
        for k in ("library", "kind", "show", "title", "mpaa", "poster", "fanart", "aired"):
            if isinstance(kw.get(k), str):
                kw[k] = sys.intern(kw[k])
        for k in ("genres", "studios"):
            kw[k] = _shared_tuple(tuple(sys.intern(g) for g in kw[k]))
        return cls(**kw)


@dataclass
class Library:
    name: str
    kind: str
    items: dict[str, Item] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # path -> why it is skipped
    warnings: dict[str, str] = field(default_factory=dict)  # path -> what was wrong (NFO, root), not skipped
    last_scan: float | None = None  # wall time of the last completed scan
    last_scan_seconds: float | None = None
    version: int = 0  # bumps when the items change

    def ordered(self) -> list[Item]:
        """Library order: shows by show, season, episode; movies by title and year; other by path
        (sorted once per version of the library)."""
        cached = self.__dict__.get("_ordered")
        if cached is not None and cached[0] == (self.version, len(self.items)):
            return cached[1]
        out = sorted(self.items.values(), key=Item.sort_key)
        self.__dict__["_ordered"] = ((self.version, len(self.items)), out)
        return out

    def by_show(self) -> dict[str, list[Item]]:
        """Episodes per show (casefolded name), in library order (built once per version)."""
        cached = self.__dict__.get("_by_show")
        if cached is not None and cached[0] == (self.version, len(self.items)):
            return cached[1]
        out: dict[str, list[Item]] = {}
        for it in self.ordered():
            if it.kind == "episode":
                out.setdefault(it.show.casefold(), []).append(it)
        self.__dict__["_by_show"] = ((self.version, len(self.items)), out)
        return out

    def shows(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for it in self.items.values():
            if it.kind == "episode":
                out[it.show] = out.get(it.show, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: kv[0].casefold()))
