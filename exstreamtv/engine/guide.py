"""The XMLTV guide, straight from the wall-clock schedule (so guide and stream agree).

Programme titles come from the media's title tag or file name; a ``SxxEyy`` in the name
becomes episode data (onscreen and xmltv_ns). Text is escaped by the XML writer, so
channel and programme names with ``&``, ``<``, quotes, any script or emoji round-trip.
"""

from __future__ import annotations

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
