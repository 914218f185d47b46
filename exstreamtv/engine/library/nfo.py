"""Kodi/Jellyfin NFO sidecars: ``movie.nfo``/``<file>.nfo`` (``<movie>``), ``<file>.nfo``
(``<episodedetails>``, several in one file for a multi-episode file), ``tvshow.nfo``
(``<tvshow>``) and ``season.nfo`` (``<season>``).

A file that is too large, not XML, not UTF-8 (or its declared encoding), or only a link
(Kodi allows an NFO that is just a scraper URL) raises ``NfoError`` naming what is wrong;
the scanner reports it and falls back to tags and names. The standard library's expat
refuses entity expansion bombs and never fetches external entities.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path


class NfoError(Exception):
    pass


@dataclass
class Nfo:
    kind: str  # movie, episodedetails, tvshow, season
    title: str = ""
    originaltitle: str = ""
    showtitle: str = ""
    plot: str = ""
    season: int | None = None
    episode: int | None = None
    episodes: tuple[int, ...] = ()  # multi-episode NFO: every <episodedetails>' number
    titles: tuple[str, ...] = ()  # and their titles
    aired: str = ""
    premiered: str = ""
    year: int | None = None
    genres: tuple[str, ...] = ()
    studios: tuple[str, ...] = ()
    mpaa: str = ""
    rating: float | None = None
    runtime: int | None = None  # minutes
    extra: dict = field(default_factory=dict)


_ROOTS = ("movie", "episodedetails", "tvshow", "season")
_DECL = re.compile(rb"^\s*<\?xml[^>]*\?>", re.S)


def read_nfo(path: str | Path, max_bytes: int) -> Nfo:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_bytes:
            raise NfoError(f"{size} bytes: larger than library_scan.max_nfo_bytes ({max_bytes})")
        data = p.read_bytes()
    except OSError as exc:
        raise NfoError(f"cannot read ({exc.strerror or exc})") from None
    return parse_nfo(data)


def parse_nfo(data: bytes) -> Nfo:
    text = data.lstrip()
    if not text:
        raise NfoError("empty file")
    if not text.startswith(b"<") and re.match(rb"^(https?://\S+\s*)+$", text):
        raise NfoError("only a link (scraper URL), no metadata")
    # a multi-episode NFO is several <episodedetails> documents in a row: read them as one
    body = _DECL.sub(b"", text, count=1)
    declared = re.match(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']", text)
    encoding = declared.group(1).decode() if declared else "utf-8"
    try:
        decoded = body.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise NfoError(f"not valid {encoding} text ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    decoded = re.sub(r"<!DOCTYPE[^>]*>", "", decoded, count=1)
    try:
        root = ET.fromstring(f"<nfo-wrapper>{decoded}</nfo-wrapper>")
    except ET.ParseError as exc:
        raise NfoError(f"not well-formed XML ({exc})") from None
    docs = [e for e in root if e.tag in _ROOTS]
    if not docs:
        tags = ", ".join(sorted({e.tag for e in root})) or "none"
        raise NfoError(f"no <movie>, <episodedetails>, <tvshow> or <season> element (found: {tags})")
    first = docs[0]
    nfo = Nfo(first.tag)
    nfo.title = _text(first, "title")
    nfo.originaltitle = _text(first, "originaltitle")
    nfo.showtitle = _text(first, "showtitle")
    nfo.plot = _text(first, "plot") or _text(first, "outline")
    nfo.season = _int(_text(first, "season") or _text(first, "seasonnumber"))
    nfo.episode = _int(_text(first, "episode"))
    nfo.aired = _date(_text(first, "aired"))
    nfo.premiered = _date(_text(first, "premiered") or _text(first, "releasedate"))
    nfo.year = _int(_text(first, "year")) or _int((nfo.premiered or nfo.aired)[:4])
    nfo.genres = tuple(dict.fromkeys(g for e in first.findall("genre") for g in _split(e.text)))
    nfo.studios = tuple(dict.fromkeys(s for e in first.findall("studio") for s in _split(e.text)))
    nfo.mpaa = _text(first, "mpaa")
    nfo.rating = _rating(first)
    nfo.runtime = _int(_text(first, "runtime"))
    if first.tag == "episodedetails":
        eps = [_int(_text(d, "episode")) for d in docs if d.tag == "episodedetails"]
        nfo.episodes = tuple(e for e in eps if e is not None)
        nfo.titles = tuple(_text(d, "title") for d in docs if d.tag == "episodedetails")
    return nfo


def _text(e: ET.Element, tag: str) -> str:
    child = e.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _int(text: str) -> int | None:
    m = re.match(r"^\s*(-?\d+)", text or "")
    return int(m.group(1)) if m else None


def _date(text: str) -> str:
    m = re.match(r"^\s*(\d{4})-(\d{2})-(\d{2})", text or "")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else ""


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in re.split(r"\s*/\s*", text or "") if p.strip()]


def _rating(e: ET.Element) -> float | None:
    """``<rating>8.1</rating>`` (old Kodi) or ``<ratings><rating default="true"><value>``."""
    for r in e.findall("ratings/rating"):
        if r.get("default") == "true" and _float(_text(r, "value")) is not None:
            return _float(_text(r, "value"))
    for r in e.findall("ratings/rating"):
        if _float(_text(r, "value")) is not None:
            return _float(_text(r, "value"))
    return _float(_text(e, "rating"))


def _float(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if 0 <= v <= 10 else None
