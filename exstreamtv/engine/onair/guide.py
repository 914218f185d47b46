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
from typing import Iterable

from .schedule import Schedule

EPISODE = re.compile(r"[Ss](\d{1,3})[ ._-]?[Ee](\d{1,4})")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def xmltv_time(t: float) -> str:
    return time.strftime("%Y%m%d%H%M%S +0000", time.gmtime(t))


def clean(text: str) -> str:
    return CONTROL.sub("", text)


def build_xmltv(channels: Iterable[tuple[int, str, str | None, Schedule | None]], start: float, hours: float) -> bytes:
    """``channels``: (number, name, icon URL, schedule). Covers [start, start + hours)."""
    tv = ET.Element("tv", {"generator-info-name": "EXStreamTV", "source-info-name": "EXStreamTV"})
    chans = list(channels)
    for number, name, icon, _ in chans:
        ch = ET.SubElement(tv, "channel", {"id": str(number)})
        ET.SubElement(ch, "display-name").text = clean(name)
        ET.SubElement(ch, "display-name").text = str(number)
        if icon:
            ET.SubElement(ch, "icon", {"src": icon})
    for number, name, _, schedule in chans:
        if schedule is None:
            continue
        for slot in schedule.upcoming(start, hours * 3600):
            p = ET.SubElement(tv, "programme", {"start": xmltv_time(slot.start), "stop": xmltv_time(slot.end),
                                                "channel": str(number)})
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
                  channels: list[tuple[int, str, str | None, Schedule | None]]) -> bytes:
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
            body = await asyncio.to_thread(build_xmltv, channels, minute * 60.0, hours)
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
