"""Media libraries with real files made by FFmpeg and real NFO sidecars: scanning, metadata
precedence, problems, incremental rescans, the guide from metadata, and the stream choice
(audio language, burned subtitles) checked in the decoded output."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path, PurePosixPath

import pytest
from lxml import etree

from exstreamtv.engine.config import ChannelConfig, LineupEntry, SubtitleConfig, parse_config
from exstreamtv.engine.library.naming import parse_episode, parse_movie
from exstreamtv.engine.library.nfo import NfoError, parse_nfo
from exstreamtv.engine.library.scanner import glob_regex

from .conftest import SMALL_PROFILE
from .test_stability import Reader, wait_for


def ff(ffmpeg, *args: str) -> None:
    subprocess.run([ffmpeg.path, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def clip(ffmpeg, path: Path, seconds: float = 4.0, freqs: tuple = (440,), langs: tuple = ("eng",),
         video: str = "testsrc2", subtitle: Path | None = None, sub_lang: str = "eng", vcodec: str = "libx264") -> Path:
    """A clip with one audio track per frequency (each tagged with its language), optionally a
    muxed text subtitle stream."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["-f", "lavfi", "-i", f"{video}{':' if '=' in video else '='}s=320x180:r=15"]
    for f in freqs:
        args += ["-f", "lavfi", "-i", f"sine=f={f}:sample_rate=48000"]
    if subtitle is not None:
        args += ["-i", str(subtitle)]
    args += ["-t", str(seconds), "-map", "0:v"]
    for i in range(len(freqs)):
        args += ["-map", f"{i + 1}:a"]
    if subtitle is not None:
        args += ["-map", f"{len(freqs) + 1}:s", "-metadata:s:s:0", f"language={sub_lang}"]
    args += ["-c:v", vcodec, "-pix_fmt", "yuv420p", "-g", "15"]
    if vcodec == "libx264":
        args += ["-preset", "ultrafast"]
    if freqs:
        args += ["-c:a", "aac", "-b:a", "64k"]
    for i, lang in enumerate(langs[:len(freqs)]):
        args += [f"-metadata:s:a:{i}", f"language={lang}"]
    if subtitle is not None:
        args += ["-c:s", "srt" if path.suffix == ".mkv" else "mov_text"]
    ff(ffmpeg, *args, str(path))
    return path


def srt(path: Path, text: str, seconds: float = 60.0) -> Path:
    path.write_text(f"1\n00:00:00,000 --> 00:00:{int(seconds):02d},000\n{text}\n\n", encoding="utf-8")
    return path


def poster(ffmpeg, path: Path, color: str = "red") -> Path:
    ff(ffmpeg, "-f", "lavfi", "-i", f"color=c={color}:s=600x900", "-frames:v", "1", str(path))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory, ffmpeg) -> Path:
    root = tmp_path_factory.mktemp("lib")
    tv = root / "tv"
    show = tv / "Show A (2001)"
    s1 = show / "Season 01"
    clip(ffmpeg, s1 / "Show A - S01E01 - Pilot.mkv", freqs=(440, 880), langs=("eng", "fra"))
    (s1 / "Show A - S01E01 - Pilot.nfo").write_text(
        "<?xml version='1.0' encoding='UTF-8'?><episodedetails><title>The Very First</title><season>1</season>"
        "<episode>1</episode><plot>It begins &amp; so on.</plot><aired>2001-09-10</aired></episodedetails>")
    clip(ffmpeg, s1 / "Show A - S01E02-E03.mp4", seconds=3.0)
    (s1 / "Show A - S01E02-E03.nfo").write_text("<episodedetails><title>Broken", encoding="utf-8")  # bad XML
    clip(ffmpeg, s1 / "Show A - S01E04.mkv", seconds=3.0, video="color=c=black", subtitle=srt(root / "in.srt", "MUXED"))
    srt(s1 / "Show A - S01E04.eng.srt", "SIDECAR")
    (show / "tvshow.nfo").write_text("<tvshow><title>The Show A</title><genre>Comedy</genre><mpaa>TV-PG</mpaa>"
                                     "<ratings><rating default='true'><value>8.2</value></rating></ratings></tvshow>")
    poster(ffmpeg, show / "poster.jpg")
    clip(ffmpeg, s1 / "Show A - S01E05.mkv", seconds=2.0, freqs=())  # video only
    (s1 / "Show A - S01E06.mkv").write_bytes(b"")  # empty
    (s1 / "Show A - S01E07.mkv").write_bytes(os.urandom(5000))  # not media
    films = root / "films"
    clip(ffmpeg, films / "Film (1999)" / "Film (1999).mp4", seconds=3.0, vcodec="mpeg4")
    (films / "Film (1999)" / "movie.nfo").write_text(
        "<movie><title>The Film</title><year>1999</year><genre>Comedy / Drama</genre><mpaa>PG</mpaa>"
        "<plot>A film.</plot></movie>")
    poster(ffmpeg, films / "Film (1999)" / "folder.jpg", "blue")
    clip(ffmpeg, films / "Film (1999)" / "extras" / "Trailer.mp4", seconds=1.0)
    (films / "Other.Film.2004.1080p.mkv").write_bytes((films / "Film (1999)" / "Film (1999).mp4").read_bytes())
    (films / "Other.Film.2004.1080p.nfo").write_bytes(b"x" * 3000)  # over the configured size: ignored
    return root


def config(root: Path, extra: str = "") -> str:
    return SMALL_PROFILE + f"""
library_scan:
  max_nfo_bytes: 2048
libraries:
  - name: tv
    kind: shows
    paths: [{root / 'tv'}]
  - name: films
    kind: movies
    paths: [{root / 'films'}, {root / 'missing'}]
    exclude: ["**/extras/**"]
channels:
  - number: 4
    name: Comedy
    lineup: [{{library: tv}}, {{library: films}}]
""" + extra


def test_names_nfo_and_globs():
    ep = parse_episode(PurePosixPath("Show/Season 02/Show - 2x03-2x04 - Title.mkv"))
    assert (ep.show, ep.season, ep.episodes, ep.title) == ("Show", 2, (3, 4), "Title")
    assert parse_episode(PurePosixPath("Anime/Anime - 105.mkv")).absolute == 105
    assert parse_movie(PurePosixPath("Release.Name.2010.720p.WEB-DL.mkv")) == parse_movie(
        PurePosixPath("Release Name (2010)/x.mkv").__class__("Release Name (2010).mkv"))
    nfo = parse_nfo(b"<episodedetails><title>A</title><episode>1</episode></episodedetails>"
                    b"<episodedetails><title>B</title><episode>2</episode></episodedetails>")
    assert nfo.episodes == (1, 2) and nfo.titles == ("A", "B")
    for bad, why in ((b"<movie><title>x</movie>", "not well-formed"), (b"http://example/x", "only a link"),
                     ("<?xml version='1.0' encoding='UTF-8'?><movie><title>\xe9</title></movie>".encode("latin-1"),
                      "not valid UTF-8"), (b"<foo/>", "no <movie>")):
        with pytest.raises(NfoError, match=why):
            parse_nfo(bad)
    rx = glob_regex("**/extras/**")
    assert rx.match("extras/a.mkv") and rx.match("x/extras/y/a.mkv") and not rx.match("extrasx/a.mkv")


def test_library_config_errors_name_the_place(tmp_path):
    with pytest.raises(Exception, match=r"c.yaml:3: channels\[0\].lineup\[0\].library: unknown library 'nope'"):
        parse_config("channels:\n  - {number: 1, name: A,\n     lineup: [{library: nope}]}\n", "c.yaml",
                     base_dir=tmp_path, env={})
    with pytest.raises(Exception, match=r"libraries\[0\].kind: must be one of movies, shows, other"):
        parse_config("libraries:\n  - {name: a, kind: films, paths: [x]}\n", "c.yaml", base_dir=tmp_path, env={})
    cfg = parse_config("libraries:\n  - {name: a, kind: movies, paths: [x]}\nchannels:\n  - number: 1\n    name: A\n"
                       "    lineup: [{library: a}, media]\n    audio_languages: [fr, ger]\n", "c.yaml", base_dir=tmp_path,
                       env={})
    ch = cfg.channels[0]
    assert ch.libraries == ["a"] and ch.paths == [str(tmp_path / "media")]
    assert ch.audio_languages == ["fra", "deu"] and cfg.libraries[0].paths == [str(tmp_path / "x")]


async def test_scan_metadata_problems_guide_and_rescan(server, library, xmltv_dtd, tmp_path):
    cfg = parse_config(config(library), "<test>", env={})
    r = await server(cfg)
    e = r.engine
    await e.libraries.wait()
    tv, films = e.libraries.get("tv"), e.libraries.get("films")
    by_name = {Path(p).name: it for p, it in tv.items.items()}
    pilot = by_name["Show A - S01E01 - Pilot.mkv"]
    assert (pilot.title, pilot.episode_title, pilot.season, pilot.episodes) == ("The Show A", "The Very First", 1, (1,))
    assert pilot.plot == "It begins & so on." and pilot.aired == "2001-09-10" and pilot.genres == ("Comedy",)
    assert pilot.mpaa == "TV-PG" and pilot.rating == 8.2 and pilot.poster.endswith("Show A (2001)/poster.jpg")
    assert [s["language"] for s in pilot.streams if s["kind"] == "audio"] == ["eng", "fra"]
    double = by_name["Show A - S01E02-E03.mp4"]
    assert double.episodes == (2, 3) and double.title == "The Show A"  # the bad NFO: names instead
    assert by_name["Show A - S01E04.mkv"].subtitle_files[0][1:] == ("eng", False)
    assert not by_name["Show A - S01E05.mkv"].has_audio
    assert {Path(p).name for p in tv.problems} == {"Show A - S01E06.mkv", "Show A - S01E07.mkv"}
    assert "empty file" in tv.problems[str(library / "tv/Show A (2001)/Season 01/Show A - S01E06.mkv")]
    assert any("not well-formed" in w for w in tv.warnings.values())
    film = next(it for it in films.items.values() if it.title == "The Film")
    assert (film.year, film.genres, film.mpaa) == (1999, ("Comedy", "Drama"), "PG")
    assert film.poster.endswith("folder.jpg") and all("extras" not in p for p in films.items)
    other = next(it for it in films.items.values() if "Other" in it.path)
    assert (other.title, other.year) == ("Other Film", 2004)
    assert any("larger than" in w for w in films.warnings.values())
    assert films.warnings[str(library / "missing")] == "library folder does not exist"
    async with r.client() as c:
        libs = {lib["name"]: lib for lib in (await c.get("/api/libraries")).json()["libraries"]}
        assert libs["tv"]["items"] == 4 and libs["tv"]["problems"] == 2 and libs["tv"]["shows"] == 1
        assert libs["films"]["counts"] == {"movie": 2} and libs["tv"]["last_scan"] is not None
        probs = (await c.get("/api/libraries/tv/problems")).json()
        assert {Path(p["path"]).name for p in probs["problems"]} == {"Show A - S01E06.mkv", "Show A - S01E07.mkv"}
        assert (await c.get("/api/libraries/nope/problems")).status_code == 404
        # the guide from the metadata, valid against xmltv.dtd
        xml = (await c.get("/iptv/xmltv.xml")).content
        doc = etree.fromstring(xml)
        assert etree.DTD(str(xmltv_dtd)).validate(doc), etree.DTD(str(xmltv_dtd)).error_log
        progs = doc.findall("programme")
        first = next(p for p in progs if p.findtext("sub-title") == "The Very First")
        assert first.findtext("title") == "The Show A" and first.findtext("desc") == "It begins & so on."
        assert first.findtext("category") == "Comedy" and first.findtext("date") == "20010910"
        assert {n.get("system"): n.text for n in first.findall("episode-num")} == {"onscreen": "S01E01",
                                                                                  "xmltv_ns": "0.0."}
        assert first.find("previously-shown").get("start") == "20010910"
        assert first.find("rating/value").text == "TV-PG" and first.find("star-rating/value").text == "8.2/10"
        multi = next(p for p in progs if p.findtext("episode-num[@system='onscreen']") == "S01E02-E03")
        assert multi.findtext("episode-num[@system='xmltv_ns']") == "0.1-2."
        movie = next(p for p in progs if p.findtext("title") == "The Film")
        assert movie.findtext("date") == "1999" and [x.text for x in movie.findall("category")] == ["Comedy", "Drama"]
        icon = first.find("icon").get("src")
        assert icon.startswith(r.base + "/artwork/")
        art = await c.get(icon.removeprefix(r.base))
        assert art.status_code == 200 and art.headers["content-type"] == "image/jpeg" and art.content[:2] == b"\xff\xd8"
        assert (await c.get(icon.removeprefix(r.base))).content == art.content and e.artwork.renders == 1
        last = max(p.get("stop")[:12] for p in progs)  # the guide reaches 72 h ahead by default
        assert last >= time.strftime("%Y%m%d%H%M", time.gmtime(e.clock.time() + 71.9 * 3600))
        # a rescan with nothing changed probes nothing; a deleted and a replaced file are noticed
        probes = e.probe.probed
        resp = await c.post("/api/libraries/tv/scan", json={})
        assert resp.status_code == 202
        await e.libraries.wait("tv")
        assert e.probe.probed == probes and e.libraries.get("tv").version == tv.version
        (library / "tv/Show A (2001)/Season 01/Show A - S01E05.mkv").unlink()
        target = library / "tv/Show A (2001)/Season 01/Show A - S01E04.mkv"
        clip_bytes = (library / "tv/Show A (2001)/Season 01/Show A - S01E01 - Pilot.mkv").read_bytes()
        target.write_bytes(clip_bytes)
        os.utime(target, (1_000_000_000, 1_000_000_000))
        assert (await c.post("/api/libraries/tv/scan", json={})).status_code == 202
        await e.libraries.wait("tv")
        after = e.libraries.get("tv")
        assert e.probe.probed == probes + 1 and len(after.items) == 3
        assert [s["language"] for s in after.items[str(target)].streams if s["kind"] == "audio"] == ["eng", "fra"]
        sched = e.channels[4].schedule
        assert str(target) in {i.path for i in sched.items} and all("S01E05" not in i.path for i in sched.items)
    assert any(ev.kind == "library_warning" and "not well-formed" in ev.message for ev in e.events.since(0, 2000))


def decoded_audio_frequency(ffmpeg, ts: bytes) -> float:
    """The dominant tone of a capture's sound: zero crossings of the decoded mono signal."""
    pcm = subprocess.run([ffmpeg.path, "-v", "error", "-i", "-", "-vn", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
                         input=ts, capture_output=True, timeout=60).stdout
    samples = memoryview(pcm).cast("h")
    n = len(samples)
    body = samples[n // 4: 3 * n // 4]  # away from the start
    crossings = sum(1 for a, b in zip(body, body[1:]) if (a < 0) != (b < 0))
    return crossings / 2 / (len(body) / 48000)


async def capture_all(client, channels, size: int) -> dict[int, bytes]:
    """``size`` bytes (at least) of each channel's stream, watched at the same time."""
    readers = {n: Reader(client, f"/stream/channels/{n}.ts", keep=True) for n in channels}
    try:
        await wait_for(lambda: all(rd.bytes > size for rd in readers.values()), 45, f"channels {list(channels)}")
        return {n: bytes(rd.data) for n, rd in readers.items()}
    finally:
        for rd in readers.values():
            await rd.close()


def bottom_brightness(ffmpeg, ts: bytes) -> float:
    """Mean brightness of the lower third of a frame in the middle of a capture (subtitles live there)."""
    raw = subprocess.run([ffmpeg.path, "-v", "error", "-i", "-", "-vf", "select=gte(n\\,20)", "-frames:v", "1",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], input=ts, capture_output=True, timeout=60).stdout
    h = len(raw) // 320
    lower = raw[2 * h // 3 * 320:]
    return sum(lower) / max(1, len(lower))


async def test_audio_language_and_burned_subtitles_in_the_decoded_output(server, ffmpeg, tmp_path):
    fra = clip(ffmpeg, tmp_path / "two.mkv", seconds=30.0, freqs=(440, 880), langs=("eng", "fra"))
    muxed = clip(ffmpeg, tmp_path / "sub.mkv", seconds=30.0, video="color=c=black",
                 subtitle=srt(tmp_path / "s.srt", "WWWWWWWWWWWW WWWWWWWWWWWW"), sub_lang="eng")
    cfg = parse_config(SMALL_PROFILE, "<test>", env={})
    cfg.libraries = []
    cfg.channels = [
        ChannelConfig(number=1, name="French", lineup=[LineupEntry(path=str(fra))], audio_languages=["fre"]),
        ChannelConfig(number=2, name="Default", lineup=[LineupEntry(path=str(fra))]),
        ChannelConfig(number=3, name="Subs", lineup=[LineupEntry(path=str(muxed))],
                      subtitles=SubtitleConfig(["en"], "always")),
        ChannelConfig(number=5, name="NoSubs", lineup=[LineupEntry(path=str(muxed))]),
        ChannelConfig(number=6, name="Forced only", lineup=[LineupEntry(path=str(muxed))],
                      subtitles=SubtitleConfig(["eng"], "forced-only")),
    ]
    r = await server(cfg)
    async with r.client() as c:
        caps = await capture_all(c, (1, 2, 3, 5, 6), 150_000)
    assert abs(decoded_audio_frequency(ffmpeg, caps[1]) - 880) < 30
    assert abs(decoded_audio_frequency(ffmpeg, caps[2]) - 440) < 30  # no preference: the first (default) track
    assert bottom_brightness(ffmpeg, caps[3]) > bottom_brightness(ffmpeg, caps[5]) + 5
    assert bottom_brightness(ffmpeg, caps[6]) < 2  # the track is not forced: nothing burned
    plan = r.engine.channels[3].recent_plans[-1]
    assert any("subtitles=" in a for a in plan.argv)


async def test_sidecar_subtitles_of_a_library_item_are_burned_in(server, ffmpeg, tmp_path):
    side = clip(ffmpeg, tmp_path / "lib" / "side.mp4", seconds=30.0, video="color=c=black")
    srt(tmp_path / "lib" / "side.en.srt", "WWWWWWWWWWWW WWWWWWWWWWWW")
    text = SMALL_PROFILE + f"""
libraries:
  - {{name: clips, kind: other, paths: [{tmp_path / 'lib'}]}}
channels:
  - {{number: 1, name: Side, lineup: [{{library: clips}}], subtitles: {{languages: [eng], mode: always}}}}
  - {{number: 2, name: Plain, lineup: [{{library: clips}}]}}
"""
    r = await server(parse_config(text, "<test>", env={}))
    await r.engine.libraries.wait()
    await wait_for(lambda: r.engine.channels[1].schedule is not None, 20, "the library on air")
    item = r.engine.libraries.get("clips").items[str(side)]
    assert item.subtitle_files == ((str(tmp_path / "lib" / "side.en.srt"), "eng", False),)
    async with r.client() as c:
        caps = await capture_all(c, (1, 2), 150_000)
    assert bottom_brightness(ffmpeg, caps[1]) > bottom_brightness(ffmpeg, caps[2]) + 5


__all__ = ["asyncio"]


async def test_scan_command_offline_then_through_the_running_server(server, library, tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(config(library))
    data = tmp_path / "data"

    def scan(*extra: str) -> subprocess.CompletedProcess:
        import sys

        return subprocess.run([sys.executable, "-m", "exstreamtv.cli", "--config", str(cfg_file), "scan",
                               "--data-dir", str(data), *extra], capture_output=True, text=True, timeout=120)

    out = await asyncio.to_thread(scan, "tv")  # no server: scanned here, into the data dir
    assert out.returncode == 0, out.stderr
    assert "tv: " in out.stdout and "skipped" in out.stdout and (data / "libraries" / "tv.json").exists()
    bad = await asyncio.to_thread(scan, "nope")
    assert bad.returncode == 2 and "unknown library nope" in bad.stderr
    r = await server(parse_config(config(library), "<test>", env={}), data_dir=data)
    # the saved scan is served at once: the channel is on air before any new scan
    assert r.engine.channels[4].schedule is not None
    out = await asyncio.to_thread(scan)
    assert out.returncode == 0 and f"on {r.base}" in out.stdout and "films: 2 item(s)" in out.stdout, out


async def test_console_libraries_view_scans_and_lists_problems(library, tmp_path, embedded):
    from exstreamtv.tui.app import ConsoleApp

    from .test_console import until

    cfg = parse_config(config(library), "<test>", env={})
    app = ConsoleApp(embedded(cfg), refresh_seconds=0.3, config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.control is not None, what="engine start")
        engine = app.handle.engine
        await engine.libraries.wait()
        await pilot.press("l")
        await until(pilot, lambda: app.screen.__class__.__name__ == "LibrariesScreen", what="libraries view")
        text = lambda: str(app.screen.query_one("#libraries-text").render())  # noqa: E731
        await until(pilot, lambda: "Show A - S01E06.mkv" in text() and "empty file" in text(), what="problems")
        assert "tv" in text() and "films" in text()
        scans = engine.events.count("library_scan_started")
        await pilot.press("s")
        await until(pilot, lambda: engine.events.count("library_scan_started") == scans + 1, what="scan")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen.__class__.__name__ != "LibrariesScreen", what="closed")
        assert app.library_problems == 0
        await pilot.press("q")
        await until(pilot, lambda: app.return_value is not None or not app.is_running, 30, "exit")
