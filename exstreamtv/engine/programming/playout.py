"""The playout: a channel's airings, built ahead from its schedule, slots and filler.

Building is a pure function of the channel's config, its collections (the libraries) and
its state: the seed and the cursors of every collection (sequential position, shuffle
cycle), the next schedule entry, and the time built up to. The built airings are stored, so
a restart or a rescan never changes what the guide already promised; new items enter when
the playout is extended. ``at(t)`` is a binary search (microseconds), so a viewer's join
never waits on scheduling, and the guide and the stream read the same airings.

Rules:
- the repeating ``schedule`` plays its entries in order (one item, ``count`` items, about
  ``minutes``, or ``flood``: until the next fixed slot), then starts again;
- a fixed ``slot`` (HH:MM local time on its weekdays) starts exactly on time: nothing that
  would run past it starts; the gap before it is filler;
- ``filler``: a pre-roll and a post-roll item around each programme, padding after each
  programme to the next ``pad_to``-minute boundary, and every gap: items that fit (the
  filler collection in shuffle order, then the fallback collection), the slate for the rest.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Callable

from ..config import ChannelConfig, CollectionSpec, WEEKDAYS
from ..onair.schedule import ScheduleItem, Slot
from .collections import key as collection_key

SLATE = "slate"
MIN_GAP = 0.5  # seconds: a shorter gap is absorbed by the slate before it (never a 0.1 s airing)
Resolver = Callable[[CollectionSpec], list[ScheduleItem]]


@dataclass
class BuildState:
    t: float  # built up to this wall time
    entry: int = 0  # next repeating-schedule entry
    cursors: dict[str, int] = field(default_factory=dict)  # per collection (and mode)

    def to_json(self) -> dict:
        return {"t": self.t, "entry": self.entry, "cursors": self.cursors}

    @classmethod
    def from_json(cls, d: dict) -> "BuildState":
        return cls(float(d["t"]), int(d.get("entry", 0)), {str(k): int(v) for k, v in d.get("cursors", {}).items()})


def config_hash(cfg: ChannelConfig) -> str:
    """What a stored playout was built from (a change rebuilds from the next programme)."""
    import dataclasses

    body = json.dumps([dataclasses.asdict(e) for e in cfg.schedule] + [dataclasses.asdict(s) for s in cfg.slots]
                      + [dataclasses.asdict(cfg.filler) if cfg.filler else None, cfg.seed], sort_keys=True, default=str)
    return hashlib.sha1(body.encode()).hexdigest()[:16]


def _slate(duration: float, title: str = "Up next") -> ScheduleItem:
    return ScheduleItem("", duration, title, True, True)


class Builder:
    """Places airings from a state; every choice comes from the seed and the cursors."""

    def __init__(self, cfg: ChannelConfig, resolve: Resolver, warn: Callable[[str], None]) -> None:
        self.cfg = cfg
        self.seed = cfg.seed if cfg.seed is not None else cfg.number
        self.warn = warn
        self._items: dict[str, list[ScheduleItem]] = {}
        self._perms: dict[tuple[str, int], list[int]] = {}
        self._resolve = resolve
        self._warned: set[str] = set()
        self.empty: set[str] = set()  # collections found empty while building
        self._shortest: dict[str, float] = {}
        self._picks: dict[tuple[int, str], tuple[CollectionSpec, str, list[ScheduleItem]]] = {}

    def items(self, spec: CollectionSpec | None) -> list[ScheduleItem]:
        if spec is None:
            return []
        k = collection_key(spec)
        if k not in self._items:
            found = [i for i in self._resolve(spec) if i.duration > 0]
            self._items[k] = found
            if not found:
                self.empty.add(k)
                self._warn_once(k, f"collection {spec.label()} is empty: its entries are skipped")
        return self._items[k]

    def _warn_once(self, key: str, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warn(msg)

    def forget(self) -> None:
        """The libraries changed: collections are resolved again at the next extension."""
        self._items.clear()
        self._shortest.clear()
        self._picks.clear()

    def shortest(self, spec: CollectionSpec) -> float:
        k = collection_key(spec)
        hit = self._shortest.get(k)
        if hit is None:
            items = self.items(spec)
            hit = self._shortest[k] = min((i.duration for i in items), default=float("inf"))
        return hit

    def pick(self, spec: CollectionSpec, mode: str, state: BuildState) -> ScheduleItem | None:
        hit = self._picks.get((id(spec), mode))  # hot: filler picks run hundreds of thousands of times a week
        if hit is None or hit[0] is not spec:
            hit = self._picks[(id(spec), mode)] = (spec, f"{mode}:{collection_key(spec)}", self.items(spec))
        _, k, items = hit
        if not items:
            return None
        n = state.cursors.get(k, 0)
        state.cursors[k] = n + 1
        if mode == "sequential":
            return items[n % len(items)]
        if mode == "shuffle":  # every item once per cycle, a new order each cycle
            cycle, pos = divmod(n, len(items))
            perm = self._perms.get((k, cycle))
            if perm is None or len(perm) != len(items):
                perm = list(range(len(items)))
                random.Random(f"{self.seed}|{k}|{cycle}").shuffle(perm)
                self._perms[(k, cycle)] = perm
            return items[perm[pos]]
        return items[random.Random(f"{self.seed}|{k}|{n}").randrange(len(items))]

    # -- fixed slots
    def next_slot(self, t: float) -> tuple[float, int] | None:
        """The first fixed slot starting at or after ``t``: (time, index)."""
        if not self.cfg.slots:
            return None
        best: tuple[float, int] | None = None
        lt = time.localtime(t)
        midnight = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        for day in range(8):
            base = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + day, 0, 0, 0, 0, 0, -1)) if day else midnight
            wd = WEEKDAYS[time.localtime(base + 43200).tm_wday]
            for i, s in enumerate(self.cfg.slots):
                if wd not in s.days:
                    continue
                lt_s = time.localtime(base + 43200)
                sod = s.second_of_day
                at = time.mktime((lt_s.tm_year, lt_s.tm_mon, lt_s.tm_mday, sod // 3600, sod // 60 % 60, sod % 60,
                                  0, 0, -1))
                if at >= t - 1e-6 and (best is None or at < best[0]):
                    best = (at, i)
            if best is not None:
                return best
        return best

    # -- filler
    def fill(self, out: list, t: float, until: float, state: BuildState) -> float:
        """Fill [t, until) with filler that fits, then the slate."""
        f = self.cfg.filler
        for spec in (f.collection, f.fallback) if f is not None else ():
            items = self.items(spec)
            if not items:
                continue
            tries = 0
            least = max(MIN_GAP, self.shortest(spec) - 1e-6)
            source = collection_key(spec)
            while until - t >= least and tries < len(items):
                it = self.pick(spec, "shuffle", state)
                if it is not None and it.duration <= until - t + 1e-6:
                    out.append((t, t + it.duration, it, 0.0, "filler", source))
                    t += it.duration
                    tries = 0
                else:
                    tries += 1
        if until - t > 1e-6:
            if f is not None and f.collection is not None and until - t >= MIN_GAP and self.items(f.collection):
                self._warn_once("filler-too-long", f"channel {self.cfg.number}: no filler fits a gap of "
                                f"{until - t:.0f}s; the slate fills it")
            if out and out[-1][4] == "slate" and out[-1][1] >= t - 1e-6:
                s = out.pop()  # one slate, not two in a row
                t = s[0]
            out.append((t, until, _slate(until - t), 0.0, SLATE, ""))
            t = until
        return t

    def boundary(self, t: float) -> float | None:
        f = self.cfg.filler
        if f is None or not f.pad_to:
            return None
        step = f.pad_to * 60
        off = -time.localtime(t).tm_gmtoff
        return ((t - off) // step + (1 if (t - off) % step > 1e-6 else 0)) * step + off

    def programme(self, out: list, t: float, it: ScheduleItem, limit: float | None, state: BuildState,
                  source: str) -> float:
        """A programme with its pre- and post-roll (each only if it fits before ``limit``)."""
        f = self.cfg.filler
        pre = self.pick(f.pre_roll, "shuffle", state) if f is not None and f.pre_roll is not None else None
        if pre is not None and (limit is None or t + pre.duration + it.duration <= limit):
            out.append((t, t + pre.duration, pre, 0.0, "filler", "pre-roll"))
            t += pre.duration
        mid = f.mid_roll if f is not None else None
        cuts = [c for c in it.chapters if 0 < c < it.duration] if mid is not None else []
        seek = 0.0
        for c in cuts + [it.duration]:  # the programme, with one mid-roll item at each chapter mark
            out.append((t, t + c - seek, it, seek, "program", source))
            t += c - seek
            seek = c
            if c < it.duration:
                m = self.pick(mid, "shuffle", state)
                if m is not None and (limit is None or t + m.duration + it.duration - c <= limit):
                    out.append((t, t + m.duration, m, 0.0, "filler", "mid-roll"))
                    t += m.duration
        post = self.pick(f.post_roll, "shuffle", state) if f is not None and f.post_roll is not None else None
        if post is not None and (limit is None or t + post.duration <= limit):
            out.append((t, t + post.duration, post, 0.0, "filler", "post-roll"))
            t += post.duration
        b = self.boundary(t)
        if b is not None:
            t = self.fill(out, t, min(b, limit) if limit is not None else b, state)
        return t

    def block(self, out: list, t: float, entry, limit: float | None, state: BuildState, source: str) -> float:
        """One schedule entry or slot: its amount of items, none running past ``limit``."""
        placed = 0
        start = t
        count = entry.count or (None if entry.minutes or entry.flood else 1)
        while True:
            if count is not None and placed >= count:
                break
            if entry.minutes and t - start >= entry.minutes * 60 - 1e-6:
                break
            it = self.pick(entry.collection, entry.mode, state)
            if it is None:
                break
            fits = limit is None or t + it.duration <= limit + 1e-6
            if entry.minutes and placed and t + it.duration > start + entry.minutes * 60 + 1e-6:
                fits = False
            if not fits:
                if placed or limit is not None:
                    state.cursors[f"{entry.mode}:{collection_key(entry.collection)}"] -= 1  # not aired: next time
                    break
            t = self.programme(out, t, it, limit, state, source)
            placed += 1
            if entry.flood and limit is None:
                break  # nothing to flood up to: one item
        return t

    def build(self, state: BuildState, until: float) -> list:
        out: list = []
        guard = 0
        while state.t < until and guard < 100_000:
            guard += 1
            t = state.t
            nxt = self.next_slot(t)
            if nxt is not None and abs(nxt[0] - t) < 1e-6:
                s = self.cfg.slots[nxt[1]]
                after = self.next_slot(t + 1)
                t2 = self.block(out, t, s, after[0] if after else None, state, f"slot {s.at}")
                if t2 == t:  # nothing to play at the slot: filler until the next one (or an hour)
                    t2 = self.fill(out, t, after[0] if after else t + 3600, state)
                state.t = t2
                continue
            limit = nxt[0] if nxt is not None else None
            entries = self.cfg.schedule
            if not entries:
                state.t = self.fill(out, t, limit if limit is not None else t + 3600, state)
                continue
            t2 = t
            for _ in range(len(entries)):
                e = entries[state.entry % len(entries)]
                state.entry = (state.entry + 1) % len(entries)
                t2 = self.block(out, t, e, limit, state, f"schedule {collection_key(e.collection)[:60]}")
                if t2 > t:
                    break
            if t2 == t:  # nothing fits before the slot (or every collection is empty)
                t2 = self.fill(out, t, limit if limit is not None else t + 3600, state)
            state.t = t2
        return out


class Playout:
    """Airings of one channel with the interface of ``Schedule`` (at, upcoming, without, shortened)."""

    KEEP_PAST = 6 * 3600  # seconds of past airings kept

    def __init__(self, builder: Builder, state: BuildState, ahead: float,
                 on_extend: Callable[["Playout"], None] | None = None) -> None:
        self.builder = builder
        self.state = state
        self.ahead = ahead
        self.on_extend = on_extend
        self.starts = array("d")
        self.ends = array("d")
        self.airings: list[tuple] = []  # (start, end, item, seek, kind, source)
        self.epoch = state.t

    # -- building
    def extend(self, until: float) -> None:
        if self.state.t >= until:
            return
        new = self.builder.build(self.state, until + self.ahead / 4)
        self.add(new)
        if self.on_extend is not None:
            self.on_extend(self)

    def add(self, airings: list) -> None:
        for a in airings:
            self.starts.append(a[0])
            self.ends.append(a[1])
            self.airings.append(a)

    def trim(self, now: float) -> None:
        cut = bisect.bisect_right(self.ends, now - self.KEEP_PAST)
        if cut > 0:
            del self.airings[:cut]
            self.starts = self.starts[cut:]
            self.ends = self.ends[cut:]

    # -- the Schedule interface
    @property
    def items(self) -> list[ScheduleItem]:
        seen: dict[str, ScheduleItem] = {}
        for a in self.airings:
            if a[4] != SLATE:
                seen.setdefault(a[2].path, a[2])
        return list(seen.values())

    def at(self, t: float) -> Slot:
        if t >= self.state.t - 1e-6:
            self.extend(t + self.ahead)
        i = bisect.bisect_right(self.starts, t) - 1
        if i < 0:
            i = 0
        a = self.airings[i]
        return Slot(i, a[2], a[0], a[1], max(0.0, t - a[0]), a[3], a[4], a[5])

    def upcoming(self, t: float, horizon: float) -> list[Slot]:
        self.at(t + horizon)
        i = max(0, bisect.bisect_right(self.starts, t) - 1)
        out = []
        while i < len(self.airings) and self.airings[i][0] < t + horizon:
            a = self.airings[i]
            out.append(Slot(i, a[2], a[0], a[1], max(0.0, t - a[0]), a[3], a[4], a[5]))
            i += 1
        return out

    def _replace(self, index: int, parts: list) -> None:
        self.airings[index:index + 1] = parts
        self.starts = array("d", (a[0] for a in self.airings))
        self.ends = array("d", (a[1] for a in self.airings))

    def without(self, path: str, at: float) -> "Playout":
        """A file that cannot be played: its airings from ``at`` on become the slate (every other
        airing keeps its time: the guide's promises and the slots hold)."""
        for i, a in enumerate(self.airings):
            if a[1] > at and a[2].path == path:
                start = max(a[0], at) if a[0] <= at else a[0]
                parts = ([(a[0], start, a[2], a[3], a[4], a[5])] if start > a[0] + 1e-6 else []) + \
                    [(start, a[1], _slate(a[1] - start, "Up next"), 0.0, SLATE, a[5])]
                self._replace(i, parts)
        return self

    def shortened(self, index: int, duration: float, at: float) -> "Playout":
        """Airing ``index`` really ends after ``duration`` seconds: the slate until its slot ends."""
        a = self.airings[index] if index < len(self.airings) else None
        if a is not None and a[0] + duration < a[1] - 1e-6:
            cut = max(a[0] + duration, min(at, a[1]))
            self._replace(index, [(a[0], cut, a[2], a[3], a[4], a[5]),
                                  (cut, a[1], _slate(a[1] - cut, "Up next"), 0.0, SLATE, a[5])])
        return self

    def _reanchored(self, items: list, index: int, at: float) -> None:
        return None  # a playout is rebuilt, never re-anchored

    # -- storage
    def to_json(self, config_hash: str) -> str:
        """Stored compactly: each file (path, title, length) and each source once, airings by index
        (a week of a channel is thousands of airings of a few hundred files)."""
        files: dict[tuple[str, str, float], int] = {}
        sources: dict[str, int] = {}
        rows = []
        for a in self.airings:
            it = a[2]
            fi = files.setdefault((it.path, it.title, it.duration), len(files))
            rows.append([a[0], a[1], fi, a[3], a[4], sources.setdefault(a[5], len(sources))])
        return json.dumps({"hash": config_hash, "state": self.state.to_json(), "version": 2,
                           "files": [list(f) for f in files], "sources": list(sources), "airings": rows})

    def load(self, rows: list, by_path: dict[str, ScheduleItem]) -> None:
        """``rows``: ``stored_airings`` of what ``to_json`` wrote."""
        # a file no longer in the library airs as the slate (its time is kept)
        out = []
        for start, end, path, seek, kind, source, duration, title in rows:
            it = by_path.get(path) if kind != SLATE else None
            if it is None:
                it, kind = _slate(end - start, "Up next" if kind == SLATE else f"{title} (unavailable)"), SLATE
            out.append((start, end, it, seek, kind, source))
        self.add(out)
        self.epoch = out[0][0] if out else self.state.t


def stored_airings(stored: dict) -> list[list]:
    """A stored playout's airings as rows ``[start, end, path, seek, kind, source, duration, title]``
    (version 2 keeps files and sources in tables; the first version had them in every row)."""
    if stored.get("version") != 2:
        return stored["airings"]
    files, sources = stored["files"], stored["sources"]
    out = []
    for start, end, fi, seek, kind, si in stored["airings"]:
        path, title, duration = files[fi]
        out.append([start, end, path, seek, kind, sources[si], duration, title])
    return out
