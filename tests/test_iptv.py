"""IPTV clients: XMLTV (validated against the XMLTV DTD), HDHomeRun emulation, tuner limit, M3U clients."""

import asyncio
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from exstreamtv.engine.onair.guide import build_xmltv, xmltv_time
from exstreamtv.engine.hdhr import device_id_is_valid, is_msearch_for_us, make_device_id, ssdp_response
from exstreamtv.engine.onair.schedule import Schedule, ScheduleItem

from .conftest import channel, small_config
from .test_stability import Reader, wait_for

DATA = Path(__file__).parent / "data"
def validate(xml: bytes, dtd_path: Path) -> None:
    from lxml import etree

    dtd = etree.DTD(str(dtd_path))
    doc = etree.fromstring(xml, etree.XMLParser(load_dtd=False, no_network=True))
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()


HOSTILE = ["Tom & Jerry <Live>", 'Say "hi" \'now\'', "Новости", "日本のテレビ", "Movie night 🎬🍿", "a]]>b"]


def test_xmltv_validates_and_hostile_names_round_trip(xmltv_dtd):
    items = [ScheduleItem(f"/m/{i}.mp4", 1800.0, t, description=f"desc {t}") for i, t in enumerate(HOSTILE)]
    items.append(ScheduleItem("/m/Show.S02E05.mkv", 1200.0, "Show S02E05"))
    sched = Schedule(items, 1_700_000_000.0)
    chans = [(1, "News & <Weather>", "http://h/iptv/logos/1.png", sched), (2, "Ünïcode 📺 \"ch\"", None, sched)]
    xml = build_xmltv(chans, 1_700_000_000.0 + 100, 24)
    validate(xml, xmltv_dtd)
    root = ET.fromstring(xml)
    names = [c.find("display-name").text for c in root.findall("channel")]
    assert names == ["News & <Weather>", "Ünïcode 📺 \"ch\""]
    titles = {p.find("title").text for p in root.findall("programme")}
    assert set(HOSTILE) <= titles
    ep = next(p for p in root.findall("programme") if p.find("title").text == "Show S02E05")
    assert [e.text for e in ep.findall("episode-num")] == ["S02E05", "1.4."]
    progs = [p for p in root.findall("programme") if p.get("channel") == "1"]
    # contiguous and covering now .. now + 24 h
    assert progs[0].get("start") <= xmltv_time(1_700_000_100.0) < progs[0].get("stop")
    assert all(a.get("stop") == b.get("start") for a, b in zip(progs, progs[1:]))
    assert progs[-1].get("stop") >= xmltv_time(1_700_000_100.0 + 24 * 3600)


def test_guide_and_schedule_agree_at_any_instant():
    items = [ScheduleItem("/a", 7.5, "A"), ScheduleItem("/b", 12.25, "B"), ScheduleItem("/c", 3.0, "C")]
    epoch = 1_700_000_000.0
    sched = Schedule(items, epoch)
    xml = build_xmltv([(1, "One", None, sched)], epoch, 1)
    progs = ET.fromstring(xml).findall("programme")
    for t in [epoch + k * 0.77 for k in range(0, 3000, 37)]:
        stamp = xmltv_time(t)
        on_air = [p for p in progs if p.get("start") <= stamp < p.get("stop")]
        slot = sched.at(t)
        # XMLTV has 1 s resolution: compare with the schedule at the whole second
        assert on_air[0].find("title").text == sched.at(float(int(t))).item.title or \
            abs(slot.start - t) < 1 or abs(slot.end - t) < 1


def test_device_id_and_ssdp():
    for seed in (0, 1, 0x0ABCDEF, 0x0FFFFFFF, 12345678):
        assert device_id_is_valid(make_device_id(seed))
    assert not device_id_is_valid(make_device_id(77) ^ 1)
    msg = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n"
    assert is_msearch_for_us(msg) and not is_msearch_for_us(b"NOTIFY * HTTP/1.1\r\n\r\n")
    assert b"LOCATION: http://10.0.0.2:8411/device.xml" in ssdp_response("1234ABCD", "http://10.0.0.2:8411")


async def test_hdhomerun_endpoints_and_guide_from_the_running_server(server, media, tmp_path, xmltv_dtd):
    cfg = small_config([channel(1, "One", media["long"], group="News"), channel(2, "Two & Co", media["a"], media["b"]),
                        channel(3, "Three", media["long"])], "hdhr:\n  tuner_count: 2\n")
    cfg.server.allowed_hosts = ["tv.local"]
    r = await server(cfg)
    async with r.client() as c:
        d = (await c.get("/discover.json", headers={"Host": "tv.local:8411"})).json()
        types = {"FriendlyName": str, "Manufacturer": str, "ModelNumber": str, "FirmwareName": str,
                 "FirmwareVersion": str, "DeviceID": str, "DeviceAuth": str, "BaseURL": str, "LineupURL": str,
                 "TunerCount": int}
        assert {k: type(d[k]) for k in types} == types
        assert d["BaseURL"] == "http://tv.local:8411" and d["LineupURL"] == "http://tv.local:8411/lineup.json"
        assert d["TunerCount"] == 2 and len(d["DeviceID"]) == 8 and device_id_is_valid(int(d["DeviceID"], 16))
        lineup = (await c.get("/lineup.json")).json()
        assert [x["GuideNumber"] for x in lineup] == ["1", "2", "3"] and lineup[1]["GuideName"] == "Two & Co"
        assert all("?" not in x["URL"] and x["URL"].endswith(f"/stream/channels/{x['GuideNumber']}.ts")
                   for x in lineup)
        assert (await c.get("/lineup_status.json")).json()["ScanInProgress"] == 0
        dev = await c.get("/device.xml")
        root = ET.fromstring(dev.text)
        ns = {"u": "urn:schemas-upnp-org:device-1-0"}
        assert root.find("u:device/u:friendlyName", ns).text == "EXStreamTV"
        # guide: valid, and what it says is on now is what the channel says is on now
        xml = (await c.get("/iptv/xmltv.xml")).content
        validate(xml, xmltv_dtd)
        now_playing = {ch["number"]: ch["now_playing"]["title"] for ch in (await c.get("/api/channels")).json()
                       ["channels"]}
        stamp = xmltv_time(r.engine.clock.time())
        for n in (1, 2, 3):
            progs = [p for p in ET.fromstring(xml).findall("programme") if p.get("channel") == str(n)]
            on = [p for p in progs if p.get("start") <= stamp < p.get("stop")]
            assert on and on[0].find("title").text == now_playing[n]
        icons = [i.get("src") for i in ET.fromstring(xml).iter("icon")]
        logo = await c.get(icons[0].replace(r.base, ""))
        assert logo.status_code == 200 and logo.content[:8] == b"\x89PNG\r\n\x1a\n"
        # tuners: two channels via the lineup, the third is refused, a second viewer of a busy channel is fine
        readers = [Reader(c, "/hdhr/stream/channels/1.ts"), Reader(c, "/hdhr/stream/channels/2.ts")]
        await wait_for(lambda: all(x.bytes > 0 for x in readers), 20, "two tuners")
        refused = await c.get("/hdhr/stream/channels/3.ts")
        assert refused.status_code == 503 and refused.json()["error"] == "All tuners in use"
        assert refused.headers["x-hdhomerun-error"].startswith("805")
        extra = Reader(c, "/hdhr/stream/channels/1.ts")
        plain = Reader(c, "/stream/channels/3.ts")  # plain clients do not use tuners
        await wait_for(lambda: extra.bytes > 0 and plain.bytes > 0, 20, "more viewers")
        for x in readers + [extra, plain]:
            await x.close()
    await r.handle.stop()  # the device id survives a restart on the same data dir
    again = await server(small_config([channel(1, "One", media["a"])]), data_dir=r.engine.data_dir)
    async with again.client() as c:
        assert (await c.get("/discover.json")).json()["DeviceID"] == d["DeviceID"]


async def test_m3u_driven_client_decodes_every_channel(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"]), channel(5, "Five", media["a"], media["c"])]))
    async with r.client() as c:
        text = (await c.get("/iptv/channels.m3u")).text
    lines = text.splitlines()
    assert lines[0].startswith("#EXTM3U")
    assert 'tvg-logo="' in lines[1] and 'group-title="EXStreamTV"' in lines[1]
    urls = [ln for ln in lines if ln.startswith("http")]
    assert len(urls) == 2

    async def decode_url(url: str) -> subprocess.CompletedProcess:
        proc = await asyncio.create_subprocess_exec(ffmpeg.path, "-hide_banner", "-v", "error", "-i", url, "-t", "3",
                                                    "-f", "null", "-", stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        return subprocess.CompletedProcess([], proc.returncode, b"", err)

    results = await asyncio.gather(*(decode_url(u) for u in urls))
    for res in results:
        assert res.returncode == 0 and res.stderr.strip() == b"", res.stderr


def test_discovery_packets_round_trip_and_bad_ones_are_named():
    from exstreamtv.engine import hdhr

    dev = f"{hdhr.make_device_id(0x1234567):08X}"
    reply = hdhr.discover_reply(hdhr.discover_request(), dev, "http://10.0.0.2:8411", 3)
    kind, tags = hdhr.parse_packet(reply)
    assert kind == hdhr.TYPE_DISCOVER_RPY
    assert tags[hdhr.TAG_DEVICE_ID] == [bytes.fromhex(dev)] and tags[hdhr.TAG_TUNER_COUNT] == [b"\x03"]
    assert tags[hdhr.TAG_BASE_URL] == [b"http://10.0.0.2:8411"]
    assert tags[hdhr.TAG_LINEUP_URL] == [b"http://10.0.0.2:8411/lineup.json"]
    assert hdhr.discover_reply(hdhr.discover_request(device_id=0x11111111), dev, "http://x", 3) is None  # not ours
    assert hdhr.discover_reply(hdhr.discover_request(device_type=5), dev, "http://x", 3) is None  # not a tuner
    good = hdhr.discover_request()
    for bad, why in ((good[:5], "shorter"), (good[:-1] + bytes([good[-1] ^ 1]), "CRC"),
                     (good[:3] + b"\x20" + good[4:], "length field")):
        with pytest.raises(hdhr.DiscoveryPacketError, match=why):
            hdhr.discover_reply(bad, dev, "http://x", 3)


async def test_hdhomerun_config_discovers_the_server(server, media):
    """Debian's hdhomerun_config (libhdhomerun) finds the tuner over UDP and reads its base URL."""
    assert shutil.which("hdhomerun_config"), "hdhomerun-config is installed by .ci/run"
    r = await server(small_config([channel(1, "One", media["a"])], "hdhr:\n  discovery_enabled: true\n"))
    out = await asyncio.to_thread(subprocess.run, ["hdhomerun_config", "discover", "127.0.0.1"],
                                  capture_output=True, text=True, timeout=20)
    assert f"hdhomerun device {r.engine.hdhr_device_id} found at 127.0.0.1" in out.stdout, out.stdout + out.stderr
