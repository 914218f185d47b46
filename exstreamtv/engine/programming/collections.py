"""Collections: what a schedule entry draws from, resolved against the libraries.

A show, a season, a library, a genre, a year or range, a minimum rating, a kind, a folder,
a hand-ordered list of files, or any combination (a smart collection). Items come in library
order (show, season, episode; movies by title), a hand-ordered list in its own order.
"""

from __future__ import annotations

from ..config import CollectionSpec
from ..library.model import Item, Library
from ..onair.lineup import from_item, library_items
from ..onair.schedule import ScheduleItem


def _year_range(text: str) -> tuple[int, int]:
    a, _, b = text.strip().partition("-")
    return int(a), int(b or a)


def matches(it: Item, spec: CollectionSpec) -> bool:
    if spec.library is not None and it.library != spec.library:
        return False
    if spec.show is not None and it.show.casefold() != spec.show.casefold():
        return False
    if spec.season is not None and it.season != spec.season:
        return False
    if spec.genre is not None and spec.genre.casefold() not in (g.casefold() for g in it.genres):
        return False
    if spec.year is not None:
        lo, hi = _year_range(spec.year)
        if it.year is None or not lo <= it.year <= hi:
            return False
    if spec.min_rating is not None and (it.rating is None or it.rating < spec.min_rating):
        return False
    if spec.kind is not None and it.kind != spec.kind:
        return False
    if spec.folder is not None and not it.path.startswith(spec.folder.rstrip("/") + "/"):
        return False
    return True


_RESOLVED: dict[tuple, list[ScheduleItem]] = {}


def resolve(spec: CollectionSpec, libraries: dict[str, Library]) -> list[ScheduleItem]:
    """The collection's items now (an empty list when nothing matches: the caller warns).
    Channels with the same collection share one result per library version."""
    memo = (key(spec), tuple((n, id(lib), lib.version, len(lib.items)) for n, lib in sorted(libraries.items())))
    hit = _RESOLVED.get(memo)
    if hit is None:
        if len(_RESOLVED) > 512:
            _RESOLVED.clear()
        hit = _RESOLVED[memo] = _resolve(spec, libraries)
    return hit


def _resolve(spec: CollectionSpec, libraries: dict[str, Library]) -> list[ScheduleItem]:
    if spec.items:
        by_path = {}
        for lib in libraries.values():
            by_path.update(lib.items)
        chosen = [by_path[p] for p in spec.items if p in by_path]
        rest = CollectionSpec(**{**spec.__dict__, "items": []}) if any(
            v is not None for k, v in spec.__dict__.items() if k != "items") else None
        return [from_item(it) for it in chosen if rest is None or matches(it, rest)]
    only_library = spec.library is not None and all(v is None or v == [] for k, v in spec.__dict__.items()
                                                     if k != "library")
    if only_library:
        return library_items(libraries[spec.library]) if spec.library in libraries else []
    libs = [libraries[spec.library]] if spec.library is not None and spec.library in libraries else \
        ([] if spec.library is not None else list(libraries.values()))
    out: list[Item] = []
    for lib in libs:
        pool = lib.by_show().get(spec.show.casefold(), []) if spec.show is not None else lib.ordered()
        out.extend(it for it in pool if matches(it, spec))
    return [from_item(it) for it in out]


_KEYS: dict[int, tuple[CollectionSpec, str]] = {}


def key(spec: CollectionSpec) -> str:
    """A collection's identity (sequential cursors follow it across schedule rebuilds)."""
    hit = _KEYS.get(id(spec))
    if hit is not None and hit[0] is spec:
        return hit[1]
    k = spec.label() + ("|" + "|".join(spec.items) if spec.items else "")
    if len(_KEYS) > 4096:
        _KEYS.clear()
    _KEYS[id(spec)] = (spec, k)
    return k
