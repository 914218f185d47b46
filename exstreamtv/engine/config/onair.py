"""What is on air, as configured: channels, lineups, collections, schedules, slots, filler,
subtitle and audio language choices, and libraries."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from .spec import _spec


@dataclass
class LineupEntry:
    """One lineup entry: a file or folder (``path``; a plain string in YAML) or a whole library."""
    path: str | None = None
    library: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.library is None):
            raise ValueError("a lineup entry is a path (a string) or {library: NAME}")

    def __str__(self) -> str:
        return self.path if self.path is not None else f"library {self.library}"


@dataclass
class SubtitleConfig:
    languages: list[str] = _spec(factory=list, doc="ISO 639 codes in order of preference")
    mode: str = _spec("off", choices=("off", "forced-only", "always"))


@dataclass
class ProfileOverride:
    """A channel's own output profile: any key left out comes from ``ffmpeg``."""
    width: int | None = _spec(None, minimum=16)
    height: int | None = _spec(None, minimum=16)
    fps: int | None = _spec(None, minimum=1)
    video_bitrate_kbps: int | None = _spec(None, minimum=100)
    audio_bitrate_kbps: int | None = _spec(None, minimum=32)


@dataclass
class CollectionSpec:
    """What a schedule entry plays: any combination narrows it (a smart collection)."""
    library: str | None = None
    show: str | None = None
    season: int | None = None
    genre: str | None = None
    year: str | None = _spec(None, doc="a year or a range: 1990-1999")
    min_rating: float | None = None
    kind: str | None = _spec(None, choices=("movie", "episode", "other"))
    folder: str | None = None
    items: list[str] = _spec(factory=list, doc="a hand-ordered list of files")

    def __post_init__(self) -> None:
        if not any((self.library, self.show, self.genre, self.year, self.kind, self.folder, self.items,
                    self.min_rating is not None, self.season is not None)):
            raise ValueError("a collection needs at least one of library, show, season, genre, year, min_rating, "
                             "kind, folder, items")
        if self.year is not None and not re.fullmatch(r"\d{4}(-\d{4})?", str(self.year).strip()):
            raise ValueError(f"year must be YYYY or YYYY-YYYY, got {self.year!r}")

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in (("library", self.library), ("show", self.show), ("season", self.season),
                                         ("genre", self.genre), ("year", self.year), ("min_rating", self.min_rating),
                                         ("kind", self.kind), ("folder", self.folder)) if v is not None]
        if self.items:
            parts.append(f"{len(self.items)} items")
        return ", ".join(parts)


@dataclass
class ScheduleEntry:
    collection: CollectionSpec = _spec()
    mode: str = _spec("sequential", choices=("sequential", "shuffle", "random"))
    count: int | None = _spec(None, minimum=1, doc="play this many items (default 1)")
    minutes: float | None = _spec(None, minimum=0.01, doc="play items for about this long")
    flood: bool = _spec(False, doc="play items until the next fixed slot")


@dataclass
class SlotEntry:
    at: str = _spec(doc="HH:MM (or HH:MM:SS), the server's local time")
    collection: CollectionSpec = _spec()
    days: list[str] = _spec(factory=lambda: list(WEEKDAYS))
    mode: str = _spec("sequential", choices=("sequential", "shuffle", "random"))
    count: int | None = _spec(None, minimum=1)
    minutes: float | None = _spec(None, minimum=0.01)
    flood: bool = False

    def __post_init__(self) -> None:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", self.at.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            raise ValueError(f"at must be HH:MM or HH:MM:SS (00:00-23:59:59), got {self.at!r}")
        bad = [d for d in self.days if d.lower()[:3] not in WEEKDAYS]
        if bad or not self.days:
            raise ValueError(f"days must be some of {', '.join(WEEKDAYS)}, got {self.days!r}")
        self.days = [d.lower()[:3] for d in self.days]

    @property
    def second_of_day(self) -> int:
        parts = [int(x) for x in self.at.strip().split(":")] + [0]
        return parts[0] * 3600 + parts[1] * 60 + parts[2]


@dataclass
class FillerConfig:
    collection: CollectionSpec | None = None  # pads gaps and boundaries
    pad_to: int | None = _spec(None, minimum=1, doc="pad after each programme to the next :MM boundary (minutes)")
    pre_roll: CollectionSpec | None = None  # one item before each programme
    post_roll: CollectionSpec | None = None  # one item after each programme
    mid_roll: CollectionSpec | None = None  # one item at each chapter mark of a programme that has chapters
    fallback: CollectionSpec | None = None  # when nothing of the filler fits; else the channel's slate
    guide: str = _spec("separate", choices=("separate", "merged"), doc="filler as its own guide entries, or "
                       "merged into the programme before it")


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class ChannelConfig:
    number: int = _spec(minimum=1)
    name: str = _spec()
    lineup: list[LineupEntry] = _spec(factory=list)
    logo: str | None = None
    group: str | None = None
    audio_languages: list[str] = _spec(factory=list, doc="preferred audio languages (ISO 639), then the file's "
                                       "default track, then the first")
    subtitles: SubtitleConfig = field(default_factory=SubtitleConfig)
    profile: ProfileOverride | None = None
    schedule: list[ScheduleEntry] = _spec(factory=list, doc="replaces lineup: entries played in order, repeated")
    slots: list[SlotEntry] = _spec(factory=list, doc="fixed times of day; they win over the repeating schedule")
    filler: FillerConfig | None = None
    seed: int | None = _spec(None, doc="shuffle/random seed (default: from the channel number)")
    copy: bool = _spec(True, doc="remux programmes whose streams already fit the output profile (no encode)")
    cache: bool = _spec(False, doc="normalise this channel's programmes once, in the background, then air them by copy")
    # problems found while loading (e.g. a lineup path that does not exist): reported and skipped
    # by the engine, never fatal for the other channels
    warnings: list[str] = field(default_factory=list, metadata={"internal": True})

    def __post_init__(self) -> None:
        self.lineup = [e if isinstance(e, LineupEntry) else LineupEntry(path=str(e)) for e in self.lineup]
        self.audio_languages = [normalise_language(x) for x in self.audio_languages]
        self.subtitles.languages = [normalise_language(x) for x in self.subtitles.languages]

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.lineup if e.path is not None]

    @property
    def libraries(self) -> list[str]:
        return [e.library for e in self.lineup if e.library is not None]


# ISO 639-1 codes people write, to the 639-2 codes media files carry (B and T forms both kept)
_ISO639_1 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "sv": "swe",
             "no": "nor", "da": "dan", "fi": "fin", "pl": "pol", "ru": "rus", "ja": "jpn", "zh": "zho", "ko": "kor",
             "ar": "ara", "he": "heb", "hi": "hin", "tr": "tur", "cs": "ces", "el": "ell", "hu": "hun", "ro": "ron"}
_639_B_TO_T = {"fre": "fra", "ger": "deu", "dut": "nld", "chi": "zho", "cze": "ces", "gre": "ell", "rum": "ron",
               "per": "fas", "slo": "slk", "ice": "isl", "mac": "mkd", "may": "msa", "wel": "cym", "arm": "hye",
               "baq": "eus", "bur": "mya", "geo": "kat", "alb": "sqi", "tib": "bod", "mao": "mri"}


def normalise_language(code: str) -> str:
    """``fr``, ``fre`` and ``fra`` are one language: the 639-2/T code (or the code as given, lowercased)."""
    c = code.strip().lower()
    c = _ISO639_1.get(c, c)
    return _639_B_TO_T.get(c, c)


@dataclass
class LibraryConfig:
    name: str = _spec()
    kind: str = _spec(choices=("movies", "shows", "other"))
    paths: list[str] = _spec(factory=list)
    include: list[str] = _spec(factory=list, doc="globs (relative to a root) a file must match; empty: all media")
    exclude: list[str] = _spec(factory=list, doc="globs (relative to a root) of files and folders to skip")
    cache: bool = _spec(False, doc="normalise this library's items in the background (aired by copy)")


@dataclass
class LibraryScanConfig:
    interval_minutes: float = _spec(60.0, doc="rescan every library this often (0: only at start, on "
                                    "`exstreamtv scan` and from the console)")
    max_nfo_bytes: int = _spec(1_048_576, minimum=1024, doc="an NFO larger than this is not read")


