"""A channel's lineup as schedule items: files and folders as probed, libraries in library
order with their metadata (title, episode, artwork, streams) attached for the guide and the
stream choice."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..library.model import Item
from .media import MediaInfo
from .schedule import ScheduleItem


@dataclass
class LineupPart:
    library: str | None = None  # a whole library
    files: list[str] = field(default_factory=list)  # or the files of one path entry


def display_title(it: Item) -> str:
    """What the console and the web page show as now playing."""
    if it.kind == "episode":
        return " · ".join(p for p in (it.show, it.episode_label(), it.episode_title) if p)
    if it.kind == "movie" and it.year:
        return f"{it.title} ({it.year})"
    return it.title


def from_item(it: Item) -> ScheduleItem:
    return ScheduleItem(it.path, it.duration, display_title(it), it.has_video, it.has_audio, it.plot, it.cover,
                        it.streams, it.subtitle_files, it)


def from_info(info: MediaInfo) -> ScheduleItem:
    return ScheduleItem(info.path, info.duration, info.title, info.has_video, info.has_audio, info.description,
                        info.cover, info.streams)


def compose(parts: list[LineupPart], infos: dict[str, MediaInfo], libraries: dict) -> list[ScheduleItem]:
    """The items in lineup order (``libraries``: name -> Library)."""
    out: list[ScheduleItem] = []
    for part in parts:
        if part.library is not None:
            lib = libraries.get(part.library)
            if lib is not None:
                out.extend(from_item(it) for it in lib.ordered())
        else:
            out.extend(from_info(infos[f]) for f in part.files if f in infos)
    return out
