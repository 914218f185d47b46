"""Real, messy media never takes a channel off air (files made by FFmpeg here)."""

import asyncio
import os
import subprocess
import time
from pathlib import Path

import pytest

from exstreamtv.engine.ffmpeg.command import FileSource, OutputProfile, program_command
from exstreamtv.engine.onair.media import MediaError, parse_probe_output, scan_lineup
from exstreamtv.engine.stream.mpegts import scan_timeline

from .conftest import channel, make_clip, small_config
from .test_stability import Reader, wait_for

PROFILE = OutputProfile(320, 180, 15, "ultrafast", 400, 64)


def ff(ffmpeg, *args: str) -> None:
    subprocess.run([ffmpeg.path, "-hide_banner", "-loglevel", "error", "-y", *args], check=True, timeout=120)


def render(ffmpeg, src: FileSource) -> bytes:
    return subprocess.run(program_command(ffmpeg.path, src, PROFILE, progress=False), capture_output=True,
                          timeout=120).stdout


def first_frame_row(ffmpeg, ts: bytes, y: int = 90) -> list[tuple[int, int, int]]:
    raw = subprocess.run([ffmpeg.path, "-v", "error", "-i", "-", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], input=ts, capture_output=True, timeout=60).stdout
    row = raw[y * 320 * 3:(y + 1) * 320 * 3]
    return [tuple(row[x * 3:x * 3 + 3]) for x in range(320)]


def bright_span(row) -> tuple[int, int] | None:
    cols = [x for x, c in enumerate(row) if sum(c) > 300]
    return (cols[0], cols[-1]) if cols else None


def test_sparse_keyframes_give_picture_from_the_offset(ffmpeg, tmp_path):
    """A broadcast-style TS with a keyframe every 250 frames, started mid-GOP: picture and sound
    start together (it used to be seconds of sound without picture)."""
    src = tmp_path / "rec.ts"
    ff(ffmpeg, "-f", "lavfi", "-i", "testsrc2=s=320x180:r=25", "-f", "lavfi", "-i", "sine=f=440", "-t", "30",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-c:a", "aac", "-f", "mpegts", str(src))
    for offset in (5.0, 17.0):
        tl = scan_timeline(render(ffmpeg, FileSource(str(src), offset, 4.0)))
        assert len(tl.video_pts) >= 50, offset  # ~4 s of picture at 15 fps
        assert abs(tl.video_pts[0] - tl.audio_pts[0]) < 0.2 and tl.max_video_gap < 0.2


def test_aspect_ratio_rotation_and_cover_art(ffmpeg, tmp_path):
    dvd = tmp_path / "dvd43.mpg"
    ff(ffmpeg, "-f", "lavfi", "-i", "color=c=white:s=720x480:r=25", "-f", "lavfi", "-i", "sine", "-t", "2",
       "-vf", "setsar=8/9", "-c:v", "mpeg2video", "-c:a", "ac3", "-ac", "6", str(dvd))
    ana = tmp_path / "anamorphic.mkv"
    ff(ffmpeg, "-f", "lavfi", "-i", "color=c=white:s=720x480:r=25", "-t", "2", "-vf", "setsar=32/27,format=yuv420p",
       "-c:v", "libx264", "-preset", "ultrafast", str(ana))
    land = tmp_path / "land.mp4"
    ff(ffmpeg, "-f", "lavfi", "-i", "color=c=white:s=320x180:r=25", "-t", "2", "-c:v", "libx264", "-preset",
       "ultrafast", "-pix_fmt", "yuv420p", str(land))
    rot = tmp_path / "phone.mp4"
    ff(ffmpeg, "-display_rotation:v:0", "90", "-i", str(land), "-c", "copy", str(rot))
    # 4:3 DVD pixels (SAR 8:9): 240 of 320 columns, pillarboxed; 16:9 anamorphic fills the frame
    assert bright_span(first_frame_row(ffmpeg, render(ffmpeg, FileSource(str(dvd), 0.5, 1.0)))) == (40, 279)
    assert bright_span(first_frame_row(ffmpeg, render(ffmpeg, FileSource(str(ana), 0.5, 1.0, has_audio=False)))) == (0, 319)
    lo, hi = bright_span(first_frame_row(ffmpeg, render(ffmpeg, FileSource(str(rot), 0.5, 1.0, has_audio=False))))
    assert 95 <= hi - lo <= 105  # portrait: 180 * 9/16 wide
    # music with cover art: the cover as a still, also from an offset
    cover = tmp_path / "cover.png"
    ff(ffmpeg, "-f", "lavfi", "-i", "color=c=red:s=200x200", "-frames:v", "1", str(cover))
    song = tmp_path / "song.mp3"
    ff(ffmpeg, "-f", "lavfi", "-i", "sine=f=440", "-i", str(cover), "-t", "4", "-map", "0", "-map", "1",
       "-c:a", "libmp3lame", "-c:v", "mjpeg", "-disposition:v", "attached_pic", str(song))
    out = subprocess.run([ffmpeg.path, "-hide_banner", "-i", str(song)], capture_output=True, text=True).stderr
    info = parse_probe_output(str(song), out)
    assert info.cover and not info.has_video and info.has_audio
    ts = render(ffmpeg, FileSource(str(song), 1.5, 2.0, has_video=False, cover=True))
    r, g, b = first_frame_row(ffmpeg, ts)[160]
    assert r > 200 and g < 50 and b < 50
    assert len(scan_timeline(ts).video_pts) >= 25


def test_probe_and_scan_report_problems_by_name(tmp_path, ffmpeg):
    music = tmp_path / "music"
    music.mkdir()
    make_clip(ffmpeg.path, music / "a.mp4", 1)
    ff(ffmpeg, "-f", "lavfi", "-i", "sine", "-t", "1", str(music / "b.flac"))
    (music / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    files, problems = scan_lineup([str(music), str(tmp_path / "missing.mp4")])
    assert [Path(f).name for f in files] == ["a.mp4", "b.flac"]  # audio files are media too
    assert (str(music / "gone.mp4"), "broken symlink (its target is gone)") in problems
    assert (str(tmp_path / "missing.mp4"), "file or folder does not exist") in problems
    with pytest.raises(MediaError) as err:
        parse_probe_output("/x/y.mp4", "/x/y.mp4: Invalid data found when processing input\n")
    assert str(err.value).count("/x/y.mp4") == 1


async def test_deleted_file_is_skipped_without_taking_the_channel_off_air(server, ffmpeg, tmp_path):
    files = [make_clip(ffmpeg.path, tmp_path / f"{n}.mp4", 4, freq=f, title=n)
             for n, f in (("one", 440), ("two", 660), ("three", 880))]
    r = await server(small_config([channel(1, "Mixed", *files)]))
    eng, ch = r.engine, r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: ch.current is not None and reader.bytes > 20_000, 15, "first programme")
        files[1].unlink()  # deleted while the channel plays
        await wait_for(lambda: eng.events.count("media_problem") >= 1, 30, "the missing file reported")
        await wait_for(lambda: ch.current_plan is not None and ch.current_plan.title == "three", 30, "next programme")
        await asyncio.sleep(2)
        health = (await c.get("/api/ai/channels/1/health")).json()
        channels = (await c.get("/api/channels/1")).json()
        await reader.close()
    assert eng.events.count("pipeline_failed") == 0 and eng.breakers[1].snapshot().failures_in_window == 0
    assert any(p["path"] == str(files[1]) and "not found" in p["reason"] for p in health["media_problems"])
    assert str(files[1]) in channels["last_error"]
    assert all(i.path != str(files[1]) for i in ch.schedule.items)  # the guide follows
    await asyncio.sleep(0.5)  # the store writes in batches
    assert eng.store.epochs()[1] == ch.schedule.epoch  # and a restart keeps it
    assert [p.kind for p in ch.recent_plans].count("error_screen") == 0
    tl = scan_timeline(bytes(reader.data))
    assert tl.max_video_gap < 0.6 and tl.backwards == 0


async def test_unplayable_and_short_files_move_on_without_failures(server, ffmpeg, tmp_path):
    good = make_clip(ffmpeg.path, tmp_path / "good.mp4", 4, title="good")
    bad = make_clip(ffmpeg.path, tmp_path / "bad.mp4", 4, title="bad")
    short = make_clip(ffmpeg.path, tmp_path / "short.ts", 6, title="short")
    r = await server(small_config([channel(1, "Messy", good, bad, short)]))
    eng, ch = r.engine, r.engine.channels[1]
    bad.write_bytes(b"\x00not media" * 3000)  # corrupted after the scan
    data = short.read_bytes()
    short.write_bytes(data[:len(data) // 2])  # an incomplete download: half of it
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: eng.events.count("media_short") >= 1, 40, "the short file noticed")
        await wait_for(lambda: eng.events.count("media_problem") >= 1, 40, "the bad file reported")
        await asyncio.sleep(1)
        still_open = not reader.ended and reader.status == 200
        await reader.close()
    assert eng.events.count("pipeline_failed") == 0 and eng.breakers[1].snapshot().failures_in_window == 0
    assert str(bad) in ch.media_problems
    durations = {Path(i.path).name: i.duration for i in ch.schedule.items}
    assert "bad.mp4" not in durations and durations["short.ts"] < 4.5  # the guide follows what really airs
    assert still_open


async def test_audio_only_programmes_play_to_the_end(server, ffmpeg, tmp_path):
    song = tmp_path / "song.mp3"
    ff(ffmpeg, "-f", "lavfi", "-i", "sine=f=440", "-t", "12", "-c:a", "libmp3lame", "-b:a", "128k", str(song))
    r = await server(small_config([channel(1, "Radio", song)]))
    eng = r.engine
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await asyncio.sleep(14)
        await reader.close()
    assert eng.events.count("auto_heal") == 0 and eng.events.count("pipeline_failed") == 0
    assert reader.bytes > 14 * 20_000 * 0.5


async def test_a_missing_lineup_path_and_an_unavailable_channel(server, ffmpeg, tmp_path, media):
    text = (f"channels:\n  - number: 1\n    name: Fine\n    lineup: [{media['a']}]\n"
            f"  - number: 2\n    name: Broken\n    lineup: [{tmp_path / 'nope.mp4'}]\n"
            f"  - number: 3\n    name: Empty\n    lineup: [{tmp_path / 'empty.mp4'}]\n")
    (tmp_path / "empty.mp4").write_bytes(b"")
    from exstreamtv.engine.config import parse_config
    from .conftest import SMALL_PROFILE
    cfg = parse_config(SMALL_PROFILE + text, "cfg.yaml", env={})
    assert cfg.channels[1].warnings[0].startswith("cfg.yaml:")
    assert "channels[1].lineup[0]: media path does not exist" in cfg.channels[1].warnings[0]
    r = await server(cfg)
    async with r.client() as c:
        chans = {ch["number"]: ch for ch in (await c.get("/api/channels")).json()["channels"]}
        m3u = (await c.get("/iptv/channels.m3u")).text
        resp = await c.get("/stream/channels/3.ts")
    assert chans[1]["state"] == "idle" and chans[2]["state"] == "unavailable"
    assert "does not exist" in chans[2]["last_error"] and "empty file" in chans[3]["last_error"]
    assert "/stream/channels/1.ts" in m3u and "/stream/channels/2.ts" not in m3u
    assert resp.status_code == 503 and "empty file" in resp.json()["detail"]
    assert any("channels[1].lineup[0]" in e.message for e in r.engine.events.since(0) if e.kind == "config_warning")


async def test_a_large_library_is_probed_in_the_background(server, ffmpeg, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    clip = make_clip(ffmpeg.path, tmp_path / "clip.mp4", 1)
    for k in range(40):  # distinct files (hard links), none in the probe cache
        os.link(clip, lib / f"clip{k:03d}.mp4")
    first = make_clip(ffmpeg.path, tmp_path / "first.mp4", 2)
    extra = "process_pool:\n  background_spawns_per_second: 8\n  background_max_processes: 1\n"
    cfg = small_config([channel(1, "Small", first), channel(2, "Library", lib)], extra)
    from exstreamtv.engine.engine import Engine
    from exstreamtv.server.runner import ServerHandle
    engine = Engine(cfg, tmp_path / "data", ffmpeg=ffmpeg)
    handle = ServerHandle(engine, host="127.0.0.1", port=0)
    t0 = time.monotonic()
    await handle.start()
    ready = time.monotonic() - t0
    try:
        import httpx
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.port}", timeout=10) as c:
            assert (await c.get("/healthz")).status_code == 200
            assert ready < 4  # serving while the library is still being probed
            lib_ch = engine.channels[2]
            assert lib_ch.state.value == "scanning" and engine.channels[1].state.value == "idle"
            resp = await c.get("/stream/channels/2.ts")
            assert resp.status_code == 503 and "being probed" in resp.json()["detail"]
            scan = (await c.get("/api/channels")).json()["scan"]
            assert scan["active"] and scan["total"] == 41  # the library and the small channel's file
            await engine.wait_scanned(60)
            assert lib_ch.state.value == "idle" and len(lib_ch.schedule.items) == 40
            assert (await c.get("/api/channels")).json()["scan"]["done"] == 41
        assert (tmp_path / "data" / "probe-cache.json").exists()
    finally:
        await handle.stop()


def lower_third_means(ffmpeg, ts: bytes) -> list[int]:
    """Per decoded frame, the mean brightness of its lower third (where subtitles are)."""
    return list(subprocess.run([ffmpeg.path, "-v", "error", "-i", "-", "-vf",
                                "crop=iw:ih/3:0:ih*2/3,scale=1:1:flags=area", "-f", "rawvideo", "-pix_fmt", "gray",
                                "-"], input=ts, capture_output=True, timeout=60).stdout)


async def test_bitmap_subtitles_of_a_dvd_rip_and_a_dvb_recording_are_burned_in(server, ffmpeg, tmp_path):
    """Subtitle tracks that are pictures, not text: a DVD rip's (dvd_subtitle in Matroska) and a DVB
    recording's (dvb_subtitle in MPEG-TS, transcoded from the DVD track by FFmpeg, bitmap to bitmap).
    Each is overlaid on the video at the source's own size, then scaled with it; a channel without
    subtitles shows none."""
    from .vobsub import write_vobsub

    idx = write_vobsub(tmp_path / "subs", [(k * 1.0, 0.9) for k in range(40)])  # one a second, as dialogue
    rip, rec = tmp_path / "rip.mkv", tmp_path / "recording.ts"
    ff(ffmpeg, "-f", "lavfi", "-i", "color=c=0x202020:s=720x480:r=25", "-f", "lavfi", "-i",
       "sine=f=440:sample_rate=48000", "-i", str(idx), "-t", "40", "-map", "0:v", "-map", "1:a", "-map", "2:s",
       "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "copy",
       "-metadata:s:s:0", "language=eng", str(rip))
    ff(ffmpeg, "-i", str(rip), "-map", "0", "-c:v", "copy", "-c:a", "copy", "-c:s", "dvbsub", str(rec))
    cfg = small_config([channel(1, "DVD", rip), channel(2, "Plain", rip), channel(3, "DVB", rec)])
    for ch in (cfg.channels[0], cfg.channels[2]):
        ch.subtitles.languages, ch.subtitles.mode = ["eng"], "always"
    r = await server(cfg)
    for n, codec in ((1, "dvd_subtitle"), (3, "dvb_subtitle")):
        item = r.engine.channels[n].schedule.items[0]
        assert [s["codec"] for s in item.streams if s["kind"] == "subtitle"] == [codec]
    from .test_library import capture_all

    async with r.client() as c:
        caps = await capture_all(c, (1, 2, 3), 200_000)
    plain = lower_third_means(ffmpeg, caps[2])
    assert len(plain) > 30 and max(plain) < 40  # the dark picture alone
    for n in (1, 3):
        subtitled = lower_third_means(ffmpeg, caps[n])
        assert len(subtitled) > 30
        assert max(subtitled) > max(plain) + 40, n  # the white bar, burned in
        assert sum(m > max(plain) + 40 for m in subtitled) > len(subtitled) // 3, n  # and it keeps coming
        plan = r.engine.channels[n].recent_plans[-1]
        assert any("[0:s:0]overlay" in a for a in plan.argv)
