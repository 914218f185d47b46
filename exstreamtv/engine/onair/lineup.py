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
                        it.streams, it.subtitle_files, it.chapters, it.gop, it)


def from_info(info: MediaInfo) -> ScheduleItem:
    return ScheduleItem(info.path, info.duration, info.title, info.has_video, info.has_audio, info.description,
                        info.cover, info.streams, (), info.chapters, info.gop)


_LIBRARY_ITEMS: dict[str, tuple[int, int, list[ScheduleItem]]] = {}  # name -> (id, version, items)


def library_items(lib) -> list[ScheduleItem]:
    """A library's schedule items, made once per library version and shared by every channel."""
    hit = _LIBRARY_ITEMS.get(lib.name)
    if hit is not None and hit[0] == id(lib) and hit[1] == lib.version:
        return hit[2]
    items = [from_item(it) for it in lib.ordered()]
    _LIBRARY_ITEMS[lib.name] = (id(lib), lib.version, items)
    return items


def compose(parts: list[LineupPart], infos: dict[str, MediaInfo], libraries: dict) -> list[ScheduleItem]:
    """The items in lineup order (``libraries``: name -> Library)."""
    if len(parts) == 1 and parts[0].library is not None and parts[0].library in libraries:
        return library_items(libraries[parts[0].library])  # the shared list itself
    out: list[ScheduleItem] = []
    for part in parts:
        if part.library is not None:
            lib = libraries.get(part.library)
            if lib is not None:
                out.extend(library_items(lib))
        else:
            out.extend(from_info(infos[f]) for f in part.files if f in infos)
    return out
