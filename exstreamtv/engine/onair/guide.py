"""The XMLTV guide, straight from the wall-clock schedule (so guide and stream agree).

Programme titles come from the media's title tag or file name; a ``SxxEyy`` in the name
becomes episode data (onscreen and xmltv_ns). Text is escaped by the XML writer, so
channel and programme names with ``&``, ``<``, quotes, any script or emoji round-trip.
"""

from __future__ import annotations

import asyncio
import re
import time
import xml.etree.ElementTree as ET
from typing import Callable, Iterable

from ..library.model import Item
from .schedule import Schedule

EPISODE = re.compile(r"[Ss](\d{1,3})[ ._-]?[Ee](\d{1,4})")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xmltv_time(t: float) -> str:
    return time.strftime("%Y%m%d%H%M%S +0000", time.gmtime(t))


def clean(text: str) -> str:
    return CONTROL.sub("", text)


def build_xmltv(channels: Iterable[tuple[int, str, str | None, Schedule | None]], start: float, hours: float,
                artwork_url: Callable[[str], str | None] | None = None) -> bytes:
    """``channels``: (number, name, icon URL, schedule). Covers [start, start + hours).
    ``artwork_url(path)``: the URL the server serves an artwork file at."""
    tv = ET.Element("tv", {"generator-info-name": "EXStreamTV", "source-info-name": "EXStreamTV"})
    chans = list(channels)
    for number, name, icon, *_ in chans:
        ch = ET.SubElement(tv, "channel", {"id": str(number)})
        ET.SubElement(ch, "display-name").text = clean(name)
        ET.SubElement(ch, "display-name").text = str(number)
        if icon:
            ET.SubElement(ch, "icon", {"src": icon})
    for number, name, _, schedule, *rest in chans:
        if schedule is None:
            continue
        merge = bool(rest and rest[0])  # filler merged into the programme before it
        p = None
        last = None
        for slot in schedule.upcoming(start, hours * 3600):
            if merge and p is not None and (slot.kind != "program" or (slot.seek > 0 and slot.item is last)):
                p.set("stop", xmltv_time(slot.end))  # filler, and a programme's part after a mid-roll
                continue
            last = slot.item
            p = ET.SubElement(tv, "programme", {"start": xmltv_time(slot.start), "stop": xmltv_time(slot.end),
                                                "channel": str(number)})
            if slot.kind == "slate":
                ET.SubElement(p, "title").text = clean(name)
                ET.SubElement(p, "desc").text = "Up next shortly."
                continue
            if slot.item.meta is not None:
                library_programme(p, slot.item.meta, artwork_url)
                continue
            ET.SubElement(p, "title").text = clean(slot.item.title)
            if slot.item.description:
                ET.SubElement(p, "desc").text = clean(slot.item.description)
            m = EPISODE.search(slot.item.title) or EPISODE.search(slot.item.path.rsplit("/", 1)[-1])
            if m:
                season, episode = int(m.group(1)), int(m.group(2))
                ET.SubElement(p, "episode-num", {"system": "onscreen"}).text = f"S{season:02d}E{episode:02d}"
                ET.SubElement(p, "episode-num", {"system": "xmltv_ns"}).text = f"{season - 1}.{episode - 1}."
    body = ET.tostring(tv, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE tv SYSTEM "xmltv.dtd">\n' + body + "\n").encode()


def library_programme(p: ET.Element, it: Item, artwork_url: Callable[[str], str | None] | None) -> None:
    """A library item's programme, children in the order xmltv.dtd requires."""
    ET.SubElement(p, "title").text = clean(it.title)
    if it.episode_title:
        ET.SubElement(p, "sub-title").text = clean(it.episode_title)
    if it.plot:
        ET.SubElement(p, "desc").text = clean(it.plot)
    if it.kind == "episode" and it.aired:
        ET.SubElement(p, "date").text = it.aired.replace("-", "")
    elif it.year:
        ET.SubElement(p, "date").text = str(it.year)
    for genre in it.genres:
        ET.SubElement(p, "category").text = clean(genre)
    if it.poster and artwork_url is not None:
        url = artwork_url(it.poster)
        if url:
            ET.SubElement(p, "icon", {"src": url})
    label = it.episode_label()
    if label:
        ET.SubElement(p, "episode-num", {"system": "onscreen"}).text = label
    if it.episodes and it.season is not None:
        eps = f"{it.episodes[0] - 1}" + (f"-{it.episodes[-1] - 1}" if len(it.episodes) > 1 else "")
        ET.SubElement(p, "episode-num", {"system": "xmltv_ns"}).text = f"{max(0, it.season - 1)}.{eps}."
    elif it.absolute is not None:
        ET.SubElement(p, "episode-num", {"system": "xmltv_ns"}).text = f".{it.absolute - 1}."
    if it.aired:
        ET.SubElement(p, "previously-shown", {"start": it.aired.replace("-", "")})
    if it.mpaa:
        r = ET.SubElement(p, "rating", {"system": "MPAA"})
        ET.SubElement(r, "value").text = clean(it.mpaa)
    if it.rating is not None:
        sr = ET.SubElement(p, "star-rating")
        ET.SubElement(sr, "value").text = f"{it.rating:g}/10"


class GuideCache:
    """The guide document per base URL, built at most once a minute, off the event loop.

    Building is 60-90 ms of Python for a few channels and a day ahead: done per request on
    the loop, 40 clients fetching the guide in a loop would stall every viewer. Here a
    request gets the document of the current minute; the first request of a minute builds
    it in a worker thread and every other one waits for that build (single flight).
    """

    MAX_KEYS = 16  # distinct base URLs kept (hosts a client may use); older ones are dropped

    def __init__(self) -> None:
        self._docs: dict[str, tuple[int, bytes]] = {}
        self._building: dict[str, "asyncio.Future[bytes]"] = {}
        self.builds = 0

    def invalidate(self) -> None:
        self._docs.clear()

    async def get(self, base: str, now: float, hours: float,
                  channels: list[tuple[int, str, str | None, Schedule | None]],
                  artwork_url: Callable[[str], str | None] | None = None) -> bytes:
        minute = int(now // 60)
        hit = self._docs.get(base)
        if hit is not None and hit[0] == minute:
            return hit[1]
        pending = self._building.get(base)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._building[base] = fut
        try:
            body = await asyncio.to_thread(build_xmltv, channels, minute * 60.0, hours, artwork_url)
            self.builds += 1
            if len(self._docs) >= self.MAX_KEYS and base not in self._docs:
                self._docs.pop(next(iter(self._docs)))
            self._docs[base] = (minute, body)
            fut.set_result(body)
            return body
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters get it, nobody logs "never retrieved"
            raise
        finally:
            self._building.pop(base, None)
