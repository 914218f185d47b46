"""Copy when the source already fits: no encoder for a matching programme, an encode with its
reason for one that does not, and a seamless, decodable stream across the splice between them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from exstreamtv.engine.onair.schedule import ScheduleItem
from exstreamtv.engine.ffmpeg.copy_policy import decide
from exstreamtv.engine.ffmpeg.command import OutputProfile

from .conftest import channel, decode, small_config
from .test_continuity import assert_seamless
from .test_stability import Reader, wait_for


def fitting_clip(ffmpeg, path: Path, seconds: float, size: str = "320x180", rate: int = 15, freq: int = 440,
                 gop: int = 15) -> Path:
    subprocess.run([ffmpeg.path, "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=s={size}:r={rate}", "-f", "lavfi",
                    "-i", f"sine=f={freq}:sample_rate=48000", "-t", str(seconds), "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", str(gop), "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-ar", "48000",
                    str(path)], check=True, timeout=60)
    return path


def test_the_decision_names_what_does_not_fit():
    p = OutputProfile(320, 180, 15, "ultrafast", 400, 64, 48000, 2, 1.0)
    v = {"kind": "video", "codec": "h264", "profile": "High", "pix_fmt": "yuv420p", "width": 320, "height": 180,
         "fps": 15.0}
    a = {"kind": "audio", "codec": "aac", "sample_rate": 48000, "layout": "stereo"}
    ok = ScheduleItem("/x", 10, "x", streams=(v, a), gop=1.0)
    assert decide(ok, p).reason == "copy"
    cases = {"encode: 1080p source": {**v, "width": 1920, "height": 1080}, "encode: hevc source": {**v, "codec": "hevc"},
             "encode: yuv420p10le source": {**v, "pix_fmt": "yuv420p10le"}, "encode: 25 fps source": {**v, "fps": 25.0},
             "encode: H.264 High 10": {**v, "profile": "High 10"}}
    for reason, vv in cases.items():
        assert decide(ScheduleItem("/x", 10, "x", streams=(vv, a), gop=1.0), p).reason == reason
    assert decide(ScheduleItem("/x", 10, "x", streams=(v, {**a, "codec": "ac3"}), gop=1.0), p).reason == \
        "encode: ac3 sound"
    assert decide(ScheduleItem("/x", 10, "x", streams=(v, {**a, "layout": "mono"}), gop=1.0), p).reason == \
        "encode: mono sound"
    assert decide(ScheduleItem("/x", 10, "x", streams=(v, a), gop=10.0), p).reason == "encode: keyframes 10s apart"
    assert decide(ok, p, burn_subtitles=True).reason == "encode: subtitles burned in"
    assert decide(ok, p, allowed=False).reason == "encode: copy is off for this channel"


async def test_a_fitting_programme_is_copied_and_the_splice_to_an_encoded_one_is_seamless(server, ffmpeg, tmp_path):
    fit = fitting_clip(ffmpeg, tmp_path / "fit.mp4", 4.0)
    big = fitting_clip(ffmpeg, tmp_path / "big.mp4", 3.0, size="640x360", freq=880)
    fit2 = fitting_clip(ffmpeg, tmp_path / "fit2.mkv", 3.0, freq=660)
    r = await server(small_config([channel(1, "Mixed", fit, big, fit2)]))
    ch = r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: len([p for p in ch.recent_plans if p.kind == "program"]) >= 5, 40, "programmes")
        await wait_for(lambda: reader.bytes > 100_000, 10, "bytes")
        health = (await c.get("/api/ai/channels/1/health")).json()
        await reader.close()
    plans = [p for p in ch.recent_plans if p.kind == "program"]
    for p in plans:
        path = p.slot.item.path
        if path in (str(fit), str(fit2)):
            assert p.transcode == "copy" and "libx264" not in p.argv and "copy" in p.argv, p.argv
        else:
            assert p.transcode == "encode: 360p source" and "libx264" in p.argv
    assert health["transcode"] in ("copy", "encode: 360p source")
    data = bytes(reader.data)
    assert_seamless(data, ffmpeg, tmp_path)  # copied and encoded programmes on one timeline
    rc, err, info = decode(ffmpeg, data, tmp_path)
    assert rc == 0 and err.strip() == "", err


async def test_the_cpu_guard_refuses_a_new_encoding_channel_with_the_error_screen(ffmpeg, tmp_path):
    from exstreamtv.engine.engine import Engine
    from exstreamtv.engine.guards.process_pool import PsutilReadings
    from exstreamtv.server.runner import ServerHandle

    import httpx

    from .test_recovery import MAGENTA, frame_kinds

    class Busy(PsutilReadings):
        busy = 99.0

        def cpu_percent(self) -> float:  # the machine's CPU is (as if) used up
            return self.busy

    fit = fitting_clip(ffmpeg, tmp_path / "fit.mp4", 20.0)
    big = fitting_clip(ffmpeg, tmp_path / "big.mp4", 20.0, size="640x360")
    cfg = small_config([channel(1, "Copies", fit), channel(2, "Encodes", big)],
                       "process_pool:\n  cpu_guard: true\n" + MAGENTA)
    readings = Busy()
    engine = Engine(cfg, tmp_path / "data", readings=readings, ffmpeg=ffmpeg)
    handle = ServerHandle(engine, host="127.0.0.1", port=0)
    await handle.start()
    try:
        engine.sample_capacity()
        est = engine.capacity.snapshot()
        assert est["more_encoding_channels"] == 0 and est["guard_enabled"]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.port}", timeout=20) as c:
            copies = Reader(c, "/stream/channels/1.ts")
            encodes = Reader(c, "/stream/channels/2.ts", keep=True)
            await wait_for(lambda: copies.bytes > 50_000 and encodes.bytes > 50_000, 20, "both viewers")
            assert engine.events.count("capacity_refused") >= 1
            assert engine.channels[2].current_plan.title == "Server at capacity"
            assert engine.channels[1].transcode == "copy"  # copying needs no room: it plays
            pool = (await c.get("/api/pool")).json()["capacity_estimate"]
            assert pool["refused_encoding_channels"] >= 1
            readings.busy = 5.0  # room again: the channel starts at its next try
            engine.sample_capacity()
            await wait_for(lambda: engine.channels[2].transcode == "encode: 360p source", 20, "the encode")
            await copies.close()
            await encodes.close()
        assert "E" in frame_kinds(ffmpeg, bytes(encodes.data), tmp_path)  # the viewer saw the error screen
    finally:
        await handle.stop()


async def test_the_normalised_cache_fills_in_the_background_airs_by_copy_and_survives_a_bad_file(
        server, ffmpeg, tmp_path):
    big = fitting_clip(ffmpeg, tmp_path / "big.mp4", 6.0, size="640x360", rate=25)
    ch_cfg = channel(1, "Cached", big)
    ch_cfg.cache = True
    r = await server(small_config([ch_cfg]))
    e = r.engine
    # no viewer yet: the cache works in the background, at low priority, through the pool
    await wait_for(lambda: e.cache.snapshot()["items"] == 1, 60, "the cache to normalise the programme")
    entry = e.cache.index[str(big)]
    assert Path(entry["file"]).exists() and not list(Path(entry["file"]).parent.glob("*.part.mkv"))
    ch = e.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: any(p.transcode == "copy (normalised cache)" for p in ch.recent_plans), 20,
                       "an airing from the cache")
        plan = next(p for p in ch.recent_plans if p.transcode == "copy (normalised cache)")
        assert "libx264" not in plan.argv and entry["file"] in plan.argv
        stats = (await c.get("/api/cache")).json()["cache"]
        assert stats["hits"] >= 1 and stats["bytes"] > 0
        assert "exstreamtv_cache_items 1.0" in (await c.get("/metrics")).text
        # a damaged cache file is never aired: the programme is encoded from its source
        Path(entry["file"]).write_bytes(b"\x00" * 1000)
        mark = len(ch.recent_plans)
        await wait_for(lambda: any(p.transcode == "encode: 360p source" for p in list(ch.recent_plans)[mark:]), 30,
                       "an encode after the damage")
        assert e.events.count("cache_dropped") == 1
        await wait_for(lambda: reader.bytes > 200_000, 20, "bytes")
        await reader.close()
    rc, err, _ = decode(ffmpeg, bytes(reader.data), tmp_path)
    assert rc == 0 and err.strip() == "", err
