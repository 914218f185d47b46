"""Programming: collections, modes, slots and filler on a fake clock over weeks; the stored
playout across restarts; bad programming; the guide against the stream with real FFmpeg;
and live reload with viewers on changed, unchanged and removed channels."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from lxml import etree

from exstreamtv.engine.config import ConfigError, parse_config
from exstreamtv.engine.onair.schedule import ScheduleItem
from exstreamtv.engine.programming.playout import Builder, BuildState, Playout, stored_airings

from .conftest import SMALL_PROFILE
from .test_library import clip
from .test_stability import Reader, wait_for

EVENINGS = """
channels:
  - number: 7
    name: Evenings
    schedule:
      - {collection: {show: "Show A"}, mode: sequential, count: 2}
      - {collection: {genre: Comedy}, mode: shuffle, count: 1}
    slots:
      - {at: "20:00", days: [mon, tue, wed, thu, fri], collection: {kind: movie}, mode: shuffle}
    filler: {collection: {kind: other}, pad_to: 30}
"""

SHOW = [ScheduleItem(f"/a/e{i}", 1320 + i, f"A{i}") for i in range(5)]
COMEDY = [ScheduleItem(f"/c/m{i}", 5400 + 60 * i, f"C{i}") for i in range(3)]
MOVIES = [ScheduleItem(f"/m/f{i}", 6000, f"F{i}") for i in range(4)]
BUMPERS = [ScheduleItem(f"/f/b{i}", 30 * (i + 1), f"B{i}") for i in range(6)]


def resolver(spec):
    if spec.show:
        return SHOW
    if spec.genre:
        return COMEDY
    if spec.kind == "movie":
        return MOVIES
    return BUMPERS


def channel_cfg(text: str = EVENINGS):
    return parse_config(text, "<test>", env={}).channels[0]


def monday(hour: int = 6) -> float:
    return time.mktime((2026, 11, 23, hour, 0, 0, 0, 0, -1))  # a Monday, local time


def test_three_weeks_of_slots_modes_and_filler_on_a_fake_clock():
    warnings: list[str] = []
    t0 = monday()
    p = Playout(Builder(channel_cfg(), resolver, warnings.append), BuildState(t0), 86400)
    p.extend(t0 + 21 * 86400)
    air = p.airings
    # one unbroken timeline: every airing starts where the one before it ends
    assert all(abs(a[1] - b[0]) < 1e-6 for a, b in zip(air, air[1:]))
    # the slot lands exactly at 20:00 on weekdays, never at weekends
    slots = [a for a in air if a[5].startswith("slot")]
    when = [time.localtime(a[0]) for a in slots]
    assert len(slots) == 15 and all((w.tm_hour, w.tm_min, w.tm_sec) == (20, 0, 0) and w.tm_wday < 5 for w in when)
    # nothing runs into a slot
    for s in slots:
        before = [a for a in air if a[0] < s[0]][-1]
        assert before[1] == s[0]
    # sequential: Show A in episode order, two at a time, the cursor running on
    shows = [a[2].path for a in air if a[2].path.startswith("/a/")]
    assert shows[:7] == ["/a/e0", "/a/e1", "/a/e2", "/a/e3", "/a/e4", "/a/e0", "/a/e1"]
    # shuffle: every movie once before any repeats (each cycle a permutation)
    movies = [a[2].path for a in slots]
    for i in range(0, len(movies) - 3, 4):
        assert sorted(movies[i:i + 4]) == [m.path for m in MOVIES], movies
    comedies = [a[2].path for a in air if a[2].path.startswith("/c/")]
    for i in range(0, len(comedies) - 2, 3):
        assert sorted(comedies[i:i + 3]) == [c.path for c in COMEDY]
    # padding: every programme of the repeating schedule starts on a :00 or :30 boundary
    for a in air:
        if a[4] == "program" and a[5].startswith("schedule"):
            lt = time.localtime(a[0])
            assert lt.tm_min in (0, 30) and lt.tm_sec == 0, time.strftime("%c", lt)
    assert {a[4] for a in air} == {"program", "filler", "slate"}
    assert any("no filler fits" in w for w in warnings)
    # at() is a lookup: programme on air at an instant, with its offset
    s = p.at(slots[3][0] + 125.5)
    assert s.start == slots[3][0] and abs(s.offset - 125.5) < 1e-6 and s.item is slots[3][2]


def test_the_stored_playout_survives_a_restart_and_continues_as_if_never_stopped():
    t0 = monday()
    whole = Playout(Builder(channel_cfg(), resolver, print), BuildState(t0), 86400)
    whole.extend(t0 + 6 * 86400)
    first = Playout(Builder(channel_cfg(), resolver, print), BuildState(t0), 86400)
    first.extend(t0 + 2 * 86400)
    stored = json.loads(first.to_json("h"))
    by_path = {i.path: i for i in SHOW + COMEDY + MOVIES + BUMPERS}
    again = Playout(Builder(channel_cfg(), resolver, print), BuildState.from_json(stored["state"]), 86400)
    again.load(stored_airings(stored), by_path)
    again.extend(t0 + 6 * 86400)
    n = min(len(whole.airings), len(again.airings))
    assert n > 500
    assert [(a[0], a[2].path, a[4]) for a in whole.airings[:n]] == [(a[0], a[2].path, a[4]) for a in again.airings[:n]]
    # a file that vanished airs as the slate in its own time; everything else keeps its time
    by_path.pop("/a/e1")
    gone = Playout(Builder(channel_cfg(), resolver, print), BuildState.from_json(stored["state"]), 86400)
    gone.load(stored_airings(stored), by_path)
    e1 = [i for i, a in enumerate(first.airings) if a[2].path == "/a/e1"]
    assert all(gone.airings[i][4] == "slate" and gone.airings[i][0] == first.airings[i][0] for i in e1)


def test_bad_programming_is_named_or_warned_with_a_fallback():
    with pytest.raises(ConfigError, match=r"channels\[0\].slots\[1\]: overlaps slots\[0\] \(mon 20:00\)"):
        parse_config("channels:\n  - number: 1\n    name: A\n    slots:\n"
                     "      - {at: '20:00', days: [mon], collection: {genre: X}}\n"
                     "      - {at: '20:00', days: [mon, tue], collection: {genre: Y}}\n", "c.yaml", env={})
    with pytest.raises(ConfigError, match=r"at must be HH:MM"):
        parse_config("channels:\n  - {number: 1, name: A, slots: [{at: '25:00', collection: {genre: X}}]}\n",
                     "c.yaml", env={})
    with pytest.raises(ConfigError, match=r"unknown library 'films'"):
        parse_config("channels:\n  - {number: 1, name: A, schedule: [{collection: {library: films}}]}\n",
                     "c.yaml", env={})
    with pytest.raises(ConfigError, match=r"a collection needs at least one of"):
        parse_config("channels:\n  - {number: 1, name: A, schedule: [{collection: {}}]}\n", "c.yaml", env={})
    with pytest.raises(ConfigError, match=r"lineup or a schedule"):
        parse_config("channels:\n  - {number: 1, name: A, lineup: [x], schedule: [{collection: {genre: X}}]}\n",
                     "c.yaml", env={})
    # an empty collection, a one-item shuffle, filler longer than every gap
    cfg = channel_cfg("channels:\n  - number: 1\n    name: A\n    schedule:\n"
                      "      - {collection: {show: Nope}, mode: sequential}\n"
                      "      - {collection: {genre: One}, mode: shuffle}\n"
                      "    filler: {collection: {kind: other}, pad_to: 15}\n")
    one = [ScheduleItem("/one", 600, "One")]
    huge = [ScheduleItem("/huge", 3 * 3600, "Huge")]
    warnings: list[str] = []
    p = Playout(Builder(cfg, lambda s: [] if s.show else one if s.genre else huge, warnings.append),
                BuildState(monday()), 86400)
    p.extend(monday() + 86400)
    progs = [a for a in p.airings if a[4] == "program"]
    assert progs and all(a[2].path == "/one" for a in progs)
    assert any("show=Nope is empty" in w for w in warnings) and any("no filler fits" in w for w in warnings)
    assert all(abs(a[1] - b[0]) < 1e-6 for a, b in zip(p.airings, p.airings[1:]))
    # nothing at all to play: the slate, and a warning (never an exception)
    warnings.clear()
    empty = Playout(Builder(cfg, lambda s: [], warnings.append), BuildState(monday()), 86400)
    assert empty.at(monday() + 100).kind == "slate" and warnings


def test_mid_roll_at_chapter_marks_and_merged_guide_entries():
    cfg = channel_cfg("channels:\n  - number: 1\n    name: A\n    schedule: [{collection: {genre: X}}]\n"
                      "    filler: {mid_roll: {kind: other}, guide: merged}\n")
    film = ScheduleItem("/film", 3000, "Film", chapters=(1000.0, 2000.0))
    p = Playout(Builder(cfg, lambda s: BUMPERS if s.kind else [film], print), BuildState(monday()), 3600)
    p.extend(monday() + 3 * 3600)
    first = p.airings[:5]
    assert [(a[2].path, a[3], a[1] - a[0]) for a in first[::2]] == [("/film", 0.0, 1000.0), ("/film", 1000.0, 1000.0),
                                                                   ("/film", 2000.0, 1000.0)]
    assert all(a[4] == "filler" and a[5] == "mid-roll" for a in first[1::2])
    slot = p.at(first[2][0] + 10)
    assert (slot.seek, slot.offset, slot.remaining) == (1000.0, 10.0, 990.0)  # the stream seeks to 1010 s
    from exstreamtv.engine.onair.guide import build_xmltv

    doc = etree.fromstring(build_xmltv([(1, "A", None, p, True)], monday(), 1.0))
    progs = doc.findall("programme")
    # one entry per airing of the film: its parts and mid-rolls merged (the second airing starts in the hour)
    assert [x.findtext("title") for x in progs] == ["Film", "Film"]
    stop = datetime.strptime(progs[0].get("stop"), "%Y%m%d%H%M%S %z").timestamp()
    assert stop == int(first[4][1])


def test_at_is_a_lookup():
    t0 = monday()
    p = Playout(Builder(channel_cfg(), resolver, print), BuildState(t0), 86400)
    p.extend(t0 + 7 * 86400)
    start = time.perf_counter()
    for i in range(20000):
        p.at(t0 + i * 29.3)
    per_call = (time.perf_counter() - start) / 20000
    assert per_call < 0.001  # a bisect, not a scan (bench/playout.py prints the real figure)


def tone_at(ffmpeg, segment: bytes, at: float, half: float = 0.2) -> float:
    """The tone of a segment's sound around ``at`` seconds into it (zero crossings)."""
    pcm = subprocess.run([ffmpeg.path, "-v", "error", "-i", "-", "-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
                         input=segment, capture_output=True, timeout=60).stdout
    samples = memoryview(pcm).cast("h")
    lo, hi = max(0, int((at - half) * 48000)), min(len(samples), int((at + half) * 48000))
    body = samples[lo:hi]
    crossings = sum(1 for a, b in zip(body, body[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / max(1e-9, len(body) / 48000)


def pdt_segments(playlists: list[str], got: dict[int, bytes]) -> list[tuple[float, float, bytes]]:
    out = {}
    for text in playlists:
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                seq = int(lines[i + 2].removesuffix(".ts"))
                if seq in got:
                    t = datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp()
                    out[seq] = (t, float(lines[i + 1][8:].rstrip(",")), got[seq])
    return [out[k] for k in sorted(out)]


async def test_the_guide_is_what_the_stream_plays(server, ffmpeg, tmp_path, xmltv_dtd):
    """A shuffled, slotted channel with pre-roll filler: for every programme of its XMLTV inside
    the minute watched, the stream at that instant plays that file (its own tone)."""
    tones = {}
    lib = tmp_path / "lib"
    for i, secs in enumerate((3.0, 4.0, 3.5)):
        f = clip(ffmpeg, lib / "Show" / "Season 01" / f"Show - S01E0{i + 1}.mkv", seconds=secs, freqs=(400 + 200 * i,))
        tones[str(f)] = 400 + 200 * i
    f = clip(ffmpeg, lib / "Film (2001)" / "Film (2001).mkv", seconds=6.0, freqs=(1700,))
    tones[str(f)] = 1700
    for i in range(2):
        f = clip(ffmpeg, lib / "bumpers" / f"bump{i}.mkv", seconds=1.0 + i * 0.5, freqs=(2300 + 300 * i,))
        tones[str(f)] = 2300 + 300 * i
    slot_at = int(time.time()) + 22  # a slot with seconds: 22 s from now
    lt = time.localtime(slot_at)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[lt.tm_wday]
    text = SMALL_PROFILE + f"""
hls: {{segment_seconds: 1.0}}
libraries:
  - {{name: tv, kind: shows, paths: [{lib}], exclude: ["Film*/**", "bumpers/**"]}}
  - {{name: films, kind: movies, paths: [{lib}], include: ["Film*/**"]}}
  - {{name: bumpers, kind: other, paths: [{lib / 'bumpers'}]}}
channels:
  - number: 5
    name: Mixed
    schedule: [{{collection: {{library: tv}}, mode: shuffle, count: 2}}]
    slots: [{{at: "{lt.tm_hour:02d}:{lt.tm_min:02d}:{lt.tm_sec:02d}", days: [{day}], collection: {{library: films}}}}]
    filler: {{pre_roll: {{library: bumpers}}, collection: {{library: bumpers}}}}
"""
    r = await server(parse_config(text, "<test>", env={}))
    await r.engine.libraries.wait()
    await wait_for(lambda: r.engine.channels[5].schedule is not None, 20, "the playout")
    from .test_hls import fetch_segments

    async with r.client() as c:
        xml = (await c.get("/iptv/xmltv.xml")).content
        playout = (await c.get("/api/channels/5/playout?hours=1")).json()
        got: dict[int, bytes] = {}
        playlists = []
        while time.time() < slot_at + 9:
            playlists += await fetch_segments(c, "/hls/channels/5/live.m3u8", 3.0, got)
    doc = etree.fromstring(xml)
    assert etree.DTD(str(xmltv_dtd)).validate(doc)
    segs = pdt_segments(playlists, got)
    covered = (segs[1][0], segs[-1][0] + segs[-1][1])
    by_second: dict[int, list] = {}
    for a in playout["airings"]:
        by_second.setdefault(int(a["start"]), []).append(a)  # XMLTV times are whole seconds
    checked = 0
    for p in doc.findall("programme[@channel='5']"):
        start = datetime.strptime(p.get("start"), "%Y%m%d%H%M%S %z").timestamp()
        stop = datetime.strptime(p.get("stop"), "%Y%m%d%H%M%S %z").timestamp()
        same = by_second.get(int(start), [])
        airing = same[0] if len(same) == 1 else None
        if airing is None or stop - start < 1.2 or not (covered[0] <= start and stop <= covered[1]):
            continue
        if airing["kind"] == "slate":  # a gap nothing fits: the guide names the channel
            assert p.findtext("title") == "Mixed"
            continue
        assert airing["title"].startswith(p.findtext("title"))  # the guide title: show or movie
        mid = (airing["start"] + airing["end"]) / 2
        seg = next(s for s in segs if s[0] <= mid < s[0] + s[1])
        freq = tone_at(ffmpeg, seg[2], mid - seg[0])
        assert abs(freq - tones[airing["path"]]) < 60, (p.findtext("title"), airing, freq)
        checked += 1
    # the slot's block starts exactly on time: its pre-roll, then the film
    block = [a for a in playout["airings"] if slot_at - 1e-3 <= a["start"] < slot_at + 10]
    assert abs(block[0]["start"] - slot_at) < 1e-3 and block[0]["collection"].startswith(("slot", "pre-roll"))
    film = next(a for a in block if a["path"] and a["path"].endswith("Film (2001).mkv"))
    assert film["collection"].startswith("slot") and film["start"] - slot_at <= 2.0  # after a bumper
    assert checked >= 4, checked


RELOAD = SMALL_PROFILE.replace("{", "{{").replace("}", "}}") + """
channels:
  - {{number: 1, name: Steady, lineup: [{long}]}}
  - {{number: 2, name: Changing, lineup: [{a}]}}
  - {{number: 3, name: Leaving, lineup: [{long}]}}
"""


async def test_live_reload_with_viewers(server, media, tmp_path):
    cfg_file = tmp_path / "exstreamtv.yaml"
    cfg_file.write_text(RELOAD.format(long=media["long"], a=media["a"]))
    from exstreamtv.engine.config import load_config

    r = await server(load_config(cfg_file, env={}))
    e = r.engine
    async with r.client() as c:
        readers = {n: Reader(c, f"/stream/channels/{n}.ts") for n in (1, 2, 3)}
        await wait_for(lambda: all(x.bytes > 30_000 for x in readers.values()), 20, "viewers")
        steady_plans = len(e.channels[1].recent_plans)
        cfg_file.write_text(RELOAD.format(long=media["long"], a=media["a"])
                            .replace(f"name: Changing, lineup: [{media['a']}]", f"name: Changed, lineup: [{media['b']}]")
                            .replace(f"  - {{number: 3, name: Leaving, lineup: [{media['long']}]}}\n",
                                     f"  - {{number: 4, name: Added, lineup: [{media['c']}]}}\n"))
        t_reload = time.monotonic()
        resp = await c.post("/api/reload", json={})
        body = resp.json()
        assert resp.status_code == 200 and body["ok"], body
        assert (body["added"], body["removed"], body["changed"], body["unchanged"]) == ([4], [3], [2], [1])
        # the removed channel: its viewers get the error screen saying so, then the stream ends
        await wait_for(lambda: readers[3].ended, 20, "the removed channel's viewer to be closed")
        assert e.events.count("channel_removed") == 1 and 3 not in e.channels
        assert any(ev.kind == "session_ended" and "channel removed" in ev.message for ev in e.events.since(0, 500))
        # the changed channel switches at its next programme boundary
        await wait_for(lambda: any(p.slot and p.slot.item.path == str(media["b"]) for p in e.channels[2].recent_plans),
                       15, "channel 2's new lineup")
        assert e.channels[2].name == "Changed"
        # the added channel plays
        added = Reader(c, "/stream/channels/4.ts")
        await wait_for(lambda: added.bytes > 20_000, 20, "the added channel")
        # the unchanged channel: the same pipeline, bytes all along
        assert len(e.channels[1].recent_plans) == steady_plans and readers[1].status == 200
        gaps = [b[0] - a[0] for a, b in zip(readers[1].arrivals, readers[1].arrivals[1:]) if a[0] >= t_reload]
        assert gaps and max(gaps) < 1.5
        m3u = (await c.get("/iptv/channels.m3u")).text
        assert "Added" in m3u and "Leaving" not in m3u
        # a bad config: refused with where, the running one stays
        cfg_file.write_text(cfg_file.read_text().replace("name: Added", "name: Added\n    bogus: 1, x"))
        bad = await c.post("/api/reload", json={})
        assert bad.status_code == 400 and str(cfg_file) in bad.json()["error"]
        assert sorted(e.channels) == [1, 2, 4]
        assert e.events.count("config_reload_failed") == 1
        for x in (*readers.values(), added):
            await x.close()
    # exstreamtv reload (the command) asks the running server
    cfg_file.write_text(RELOAD.format(long=media["long"], a=media["a"]))
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "exstreamtv.cli", "reload", "--data-dir",
                                                   str(Path(e.data_dir))], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "added 3" in out.stdout and "removed 4" in out.stdout, out.stdout + out.stderr


def test_chapter_marks_are_probed(ffmpeg, tmp_path):
    from exstreamtv.engine.onair.media import parse_probe_output

    meta = tmp_path / "meta.txt"
    meta.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=2000\ntitle=One\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=2000\nEND=4000\ntitle=Two\n"
                    "[CHAPTER]\nTIMEBASE=1/1000\nSTART=4000\nEND=6000\ntitle=Three\n")
    src = clip(ffmpeg, tmp_path / "plain.mkv", seconds=6.0)
    out = tmp_path / "chapters.mkv"
    subprocess.run([ffmpeg.path, "-v", "error", "-y", "-i", str(src), "-i", str(meta), "-map_metadata", "1",
                    "-map_chapters", "1", "-c", "copy", str(out)], check=True)
    err = subprocess.run([ffmpeg.path, "-hide_banner", "-i", str(out)], capture_output=True, text=True).stderr
    assert parse_probe_output(str(out), err).chapters == (2.0, 4.0)


async def test_console_upcoming_view_and_reload_key(ffmpeg, tmp_path, embedded):
    from exstreamtv.engine.config import load_config
    from exstreamtv.tui.app import ConsoleApp

    from .test_console import notes, until

    lib = tmp_path / "lib"
    clip(ffmpeg, lib / "a.mkv", seconds=3.0)
    clip(ffmpeg, lib / "b.mkv", seconds=4.0)
    cfg_file = tmp_path / "c.yaml"
    body = SMALL_PROFILE + f"""
libraries: [{{name: clips, kind: other, paths: [{lib}]}}]
channels:
  - {{number: 3, name: Programmed, schedule: [{{collection: {{library: clips}}, mode: shuffle, count: 2}}]}}
"""
    cfg_file.write_text(body)
    cfg = load_config(cfg_file, env={})
    app = ConsoleApp(embedded(cfg), refresh_seconds=0.3, config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.control is not None, what="engine start")
        engine = app.handle.engine
        await until(pilot, lambda: engine.channels[3].schedule is not None, 20, "the playout")
        await pilot.pause(0.5)
        await pilot.press("u")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PlayoutScreen", what="upcoming view")
        text = lambda: str(app.screen.query_one("#playout-text").render())  # noqa: E731
        await until(pilot, lambda: "program" in text() and ("a" in text()), what="airings")
        assert "programmed" in text()
        await pilot.press("escape")
        cfg_file.write_text(body.replace("name: Programmed", "name: Renamed"))
        await pilot.press("R")
        await until(pilot, lambda: any("Reloaded" in n for n in notes(app)), what="reload")
        assert engine.channels[3].name == "Renamed"
        await pilot.press("q")
        await until(pilot, lambda: app.return_value is not None or not app.is_running, 30, "exit")
