"""What file and folder names say, the way Plex, Jellyfin, Emby and Kodi read them.

Shows: ``Show/Season 01/Show - S01E02 - Title.mkv``, ``1x02``, multi-episode files
(``S01E01-E02``, ``S01E01E02``, ``1x01-1x02``), absolute numbering (``Show - 012.mkv``,
``Show E012``), specials in ``Specials``/``Season 00``. Movies: ``Title (Year)`` folders or
files, or ``Title.2001.1080p...`` release names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePath

_SXE = re.compile(r"(?<![A-Za-z0-9])[Ss](\d{1,3})[ ._-]?[Ee](\d{1,4})((?:[ ._-]?-?[ ._-]?[Ee]\d{1,4})*)")
_MORE_E = re.compile(r"[Ee](\d{1,4})")
_NXN = re.compile(r"(?<![0-9])(\d{1,2})x(\d{2,3})((?:[ ._-]*-[ ._-]*(?:\d{1,2}x)?\d{2,3})*)(?![0-9])")
_MORE_NXN = re.compile(r"(?:\d{1,2}x)?(\d{2,3})")
_ABSOLUTE = re.compile(r"(?:^|[ ._-])(?:[Ee][Pp]?|[Ee]pisode[ ._]?|#)?(\d{1,4})(?:v\d)?(?=$|[ ._-])")
_SEASON_DIR = re.compile(r"^(?:season|series|staffel|saison|s)[ ._-]*(\d{1,3})$", re.I)
_YEAR = re.compile(r"[(\[]((?:19|20)\d{2})[)\]]|(?<![0-9])((?:19|20)\d{2})(?![0-9])")
_JUNK = re.compile(r"\b(?:2160p|1080p|1080i|720p|576p|480p|4k|uhd|hdr|bluray|blu-ray|bdrip|brrip|web-?dl|webrip|"
                   r"hdtv|dvdrip|dvd|x264|x265|h264|h265|hevc|aac|ac3|dts|remux|proper|repack|extended|"
                   r"unrated|internal)\b.*$", re.I)


@dataclass(frozen=True)
class EpisodeName:
    show: str
    season: int | None
    episodes: tuple[int, ...] = ()
    absolute: int | None = None
    title: str = ""  # the episode title the name carries, if any


@dataclass(frozen=True)
class MovieName:
    title: str
    year: int | None = None
    extra: tuple = field(default=())


def tidy(text: str) -> str:
    """A name as people write it: separators to spaces, no trailing dashes."""
    text = re.sub(r"[._]+", " ", text)
    text = re.sub(r"\s+", " ", text)
    return text.strip(" -")


def season_of_folder(name: str) -> int | None:
    if name.lower() in ("specials", "special", "extras"):
        return 0 if name.lower().startswith("special") else None
    m = _SEASON_DIR.match(name.strip())
    return int(m.group(1)) if m else None


def parse_episode(rel: PurePath) -> EpisodeName | None:
    """An episode's show, season and numbers from its path relative to the library root."""
    parts = rel.parts
    stem = PurePath(parts[-1]).stem
    folders = list(parts[:-1])
    season = None
    if folders and season_of_folder(folders[-1]) is not None:
        season = season_of_folder(folders[-1])
        folders = folders[:-1]
    show_folder = strip_year(tidy(folders[0])) if folders else ""
    m = _SXE.search(stem)
    if m:
        episodes = (int(m.group(2)),) + tuple(int(x) for x in _MORE_E.findall(m.group(3) or ""))
        episodes = _expand(episodes)
        show = show_folder or strip_year(tidy(stem[:m.start()]))
        return EpisodeName(show, int(m.group(1)), episodes, None, _after(stem, m.end()))
    m = _NXN.search(stem)
    if m:
        episodes = (int(m.group(2)),) + tuple(int(x) for x in _MORE_NXN.findall(m.group(3) or ""))
        show = show_folder or strip_year(tidy(stem[:m.start()]))
        return EpisodeName(show, int(m.group(1)), _expand(episodes), None, _after(stem, m.end()))
    # absolute numbering: the show's name, then a number (anime and long-running shows)
    rest = stem
    if show_folder and tidy(stem).lower().startswith(show_folder.lower()):
        rest = tidy(stem)[len(show_folder):]
    m = _ABSOLUTE.search(rest)
    if m and show_folder and not _YEAR.fullmatch(m.group(1)):
        return EpisodeName(show_folder, season, (), int(m.group(1)), _after(rest, m.end()))
    if show_folder:
        return EpisodeName(show_folder, season, (), None, tidy(stem))
    return None


def _expand(episodes: tuple[int, ...]) -> tuple[int, ...]:
    """``E01-E03`` is 1, 2 and 3 (a range), ``E01E02`` is 1 and 2."""
    if len(episodes) == 2 and episodes[1] > episodes[0] + 1 and episodes[1] - episodes[0] < 10:
        return tuple(range(episodes[0], episodes[1] + 1))
    return tuple(dict.fromkeys(episodes))


def _after(stem: str, end: int) -> str:
    title = tidy(stem[end:])
    title = _JUNK.sub("", title).strip(" -")
    return title


def strip_year(name: str) -> str:
    return re.sub(r"\s*[(\[](?:19|20)\d{2}[)\]]\s*$", "", name).strip()


def parse_movie(rel: PurePath) -> MovieName:
    """A movie's title and year from its folder (``Title (Year)``) or file name."""
    stem = PurePath(rel.parts[-1]).stem
    candidates = [stem] + ([rel.parts[-2]] if len(rel.parts) > 1 else [])
    for text in candidates:
        m = re.match(r"^(.*?)[ ._]*[(\[]((?:19|20)\d{2})[)\]]", text)
        if m and tidy(m.group(1)):
            return MovieName(tidy(m.group(1)), int(m.group(2)))
    # release names: Title.2001.1080p.BluRay...
    m = re.match(r"^(.*?)[ ._]((?:19|20)\d{2})(?:[ ._]|$)", stem)
    if m and tidy(m.group(1)):
        return MovieName(tidy(m.group(1)), int(m.group(2)))
    return MovieName(tidy(_JUNK.sub("", tidy(stem))) or tidy(stem), None)
