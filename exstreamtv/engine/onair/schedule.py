"""Wall-clock schedule: what is on a channel at any instant is a pure function of time.

A channel's lineup plays in order and loops, starting at the channel's epoch. Given the
probed durations, ``Schedule.at(t)`` says which item is on and how far into it, so a viewer
tuning in mid-program joins at the right offset, the guide and the stream agree, and a
restart of the server does not move anything (the epoch is persisted).
"""

from __future__ import annotations

import bisect
import weakref
from array import array
import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScheduleItem:
    path: str
    duration: float
    title: str
    has_video: bool = True
    has_audio: bool = True
    description: str = ""
    cover: bool = False
    streams: tuple = ()  # the file's streams (probe): audio and subtitle choice read these
    subtitle_files: tuple = ()  # (path, language, forced) sidecar subtitle files
    chapters: tuple = ()  # chapter starts: mid-roll points
    gop: float | None = None  # H.264 keyframe spacing (copy decisions)
    meta: Any = field(default=None, compare=False, repr=False)  # the library Item (guide metadata), if any


@dataclass(frozen=True)
class Slot:
    index: int  # position in the lineup
    item: ScheduleItem
    start: float  # wall-clock start of this airing
    end: float
    offset: float  # seconds into the airing at the queried instant
    seek: float = 0.0  # where in the file the airing begins (a programme split by filler, a cut)
    kind: str = "program"  # program, filler, slate (a playout's gap with nothing that fits)
    source: str = ""  # the collection it came from

    @property
    def remaining(self) -> float:
        return self.end - self.start - self.offset


class _Starts:
    """Where each item of one items list starts in the loop: 8 bytes an item, and one table for
    every schedule of that list (100 channels of a 20,000-item library hold one, not 100)."""

    __slots__ = ("items", "starts", "total", "__weakref__")

    def __init__(self, items: list[ScheduleItem]) -> None:
        self.items = items
        self.starts = array("d")
        acc = 0.0
        for it in items:
            self.starts.append(acc)
            acc += it.duration
        self.total = acc


_SHARED_STARTS: "weakref.WeakValueDictionary[int, _Starts]" = weakref.WeakValueDictionary()


def _starts_of(items: list[ScheduleItem]) -> _Starts:
    """The table for ``items`` (lists are never changed once scheduled: a change makes a new list)."""
    found = _SHARED_STARTS.get(id(items))
    if found is not None and found.items is items:
        return found
    made = _SHARED_STARTS[id(items)] = _Starts(items)
    return made


class Schedule:
    def __init__(self, items: list[ScheduleItem], epoch: float) -> None:
        if not all(i.duration > 0 for i in items):
            items = [i for i in items if i.duration > 0]
        if not items:
            raise ValueError("a schedule needs at least one item with a positive duration")
        self.items = items  # shared, not copied: channels of one library hold one list
        self.epoch = epoch
        shared = _starts_of(items)  # and one table of start offsets for it
        self._shared = shared
        self._starts = shared.starts
        self.total = shared.total

    def at(self, t: float) -> Slot:
        """The item on air at wall time ``t`` and the offset into it."""
        elapsed = t - self.epoch
        loops, pos = divmod(elapsed, self.total)
        idx = bisect.bisect_right(self._starts, pos) - 1
        idx = max(0, min(idx, len(self.items) - 1))
        item = self.items[idx]
        offset = pos - self._starts[idx]
        if offset >= item.duration:  # float edge at the very end of the loop
            return self.at(self.epoch + (loops + 1) * self.total)
        start = self.epoch + loops * self.total + self._starts[idx]
        return Slot(idx, item, start, start + item.duration, offset)

    def _reanchored(self, items: list[ScheduleItem], index: int, at: float) -> "Schedule | None":
        """A schedule of ``items`` whose item ``index`` starts exactly at wall time ``at``."""
        items = [i for i in items if i.duration > 0]
        if not items:
            return None
        new = Schedule(items, 0.0)
        new.epoch = at - new._starts[index % len(items)]
        return new

    def without(self, path: str, at: float) -> "Schedule | None":
        """The schedule with every airing of ``path`` removed (a file that vanished or cannot be
        opened), re-anchored so the programme after it starts at ``at``; None if nothing is left."""
        slot = self.at(at)
        keep = [i for i in self.items if i.path != path]
        if not keep:
            return None
        # the first item after the removed one that is still there
        nxt = next(((slot.index + k) % len(self.items) for k in range(1, len(self.items) + 1)
                    if self.items[(slot.index + k) % len(self.items)].path != path))
        index = sum(1 for i in self.items[:nxt] if i.path != path)
        return self._reanchored(keep, index, at)

    def shortened(self, index: int, duration: float, at: float) -> "Schedule":
        """Item ``index`` really lasts ``duration`` (it ended early): the next item starts at ``at``."""
        items = list(self.items)
        old = items[index]
        items[index] = dataclasses.replace(old, duration=max(0.5, duration))
        return self._reanchored(items, (index + 1) % len(items), at) or self

    def upcoming(self, t: float, horizon: float) -> list[Slot]:
        """Every airing that overlaps [t, t + horizon), in order (offset is t's offset, else 0)."""
        first = self.at(t)
        out = []
        start, idx = first.start, first.index
        while start < t + horizon:
            item = self.items[idx]
            out.append(Slot(idx, item, start, start + item.duration, max(0.0, t - start)))
            start += item.duration
            idx = (idx + 1) % len(self.items)
        return out
