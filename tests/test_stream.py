"""Real FFmpeg, real HTTP on loopback: channels stream, join mid-program, continue across programs."""

import asyncio

from exstreamtv.engine.stream.mpegts import scan_timeline

from .conftest import capture, channel, decode, ffmpeg_children, small_config


async def test_stream_decodes_as_h264_and_aac(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        data = await capture(c, "/stream/channels/1.ts", 4.0)
    assert len(data) > 50_000
    rc, err, info = decode(ffmpeg, data, tmp_path)
    assert rc == 0 and err.strip() == "", err
    assert "Video: h264" in info and "320x180" in info and "15 fps" in info
    assert "Audio: aac" in info and "48000 Hz" in info


async def test_viewer_joins_mid_program_at_schedule_offset(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    ch = r.engine.channels[1]
    await asyncio.sleep(1.2)  # the schedule started at server start: we are now mid-program
    expected = ch.now_playing()
    async with r.client() as c:
        await capture(c, "/stream/channels/1.ts", 1.5)
    first = ch.recent_plans[0]
    assert first.slot.index == expected.index
    assert expected.offset > 1.0
    assert abs(first.slot.offset - expected.offset) < 0.5
    assert "-ss" in first.argv and abs(float(first.argv[first.argv.index("-ss") + 1]) - expected.offset) < 0.5


async def test_continuous_across_program_changes(server, media, ffmpeg, tmp_path):
    # three short programs (one without audio, one at another size and rate): several changes in 9 s
    r = await server(small_config([channel(1, "Mixed", media["a"], media["b"], media["c"])]))
    async with r.client() as c:
        data = await capture(c, "/stream/channels/1.ts", 9.0)
    ch = r.engine.channels[1]
    assert ch.segments_started >= 3, "expected at least two program changes"
    rc, err, info = decode(ffmpeg, data, tmp_path)
    assert rc == 0 and err.strip() == "", err
    tl = scan_timeline(data)
    assert tl.cc_errors == 0
    assert tl.backwards == 0
    assert tl.max_video_gap <= 1.0, tl.max_video_gap
    assert tl.video_pts[-1] - tl.video_pts[0] > 6.0


async def test_fanout_one_pipeline_and_slow_viewer_does_not_hold_back(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c1, r.client() as c2, r.client() as slow:
        async with slow.stream("GET", "/stream/channels/1.ts") as stuck:
            assert stuck.status_code == 200
            # the stuck viewer reads one chunk and then nothing
            await stuck.aiter_raw().__anext__()
            a, b = await asyncio.gather(capture(c1, "/stream/channels/1.ts", 5.0),
                                        capture(c2, "/stream/channels/1.ts", 5.0))
            programs = r.engine.pool.processes(channel_id=1, role="program")
            assert len(programs) <= 1
            assert len([p for p in ffmpeg_children() if "-filter_complex" in " ".join(p.cmdline())]) == 1
    for data in (a, b):
        tl = scan_timeline(data)
        # both readers got real time (about 5 s of media, minus start-up) despite the stuck one
        assert tl.video_pts[-1] - tl.video_pts[0] > 3.5
        assert tl.backwards == 0


async def test_unknown_channel_is_json_404(server, media):
    r = await server(small_config([channel(1, "One", media["a"])]))
    async with r.client() as c:
        for path in ("/stream/channels/9.ts", "/stream/channels/abc.ts"):
            resp = await c.get(path)
            assert resp.status_code == 404
            assert "Unknown channel" in resp.json()["error"]
        resp = await c.get("/nope")
        assert resp.status_code == 404 and resp.json()["error"] == "Not found"


async def test_playlist_uses_request_host(server, media):
    cfg = small_config([channel(1, "One", media["a"], group="Films"), channel(7, 'Se"ven', media["b"])])
    cfg.server.allowed_hosts = ["tv.example"]
    r = await server(cfg)
    async with r.client() as c:
        resp = await c.get("/iptv/channels.m3u", headers={"Host": "tv.example:8411"})
        unknown = await c.get("/iptv/channels.m3u", headers={"Host": "rebound.evil.example"})
        injected = await c.get("/iptv/channels.m3u", headers={"Host": 'tv.example" tvg-x="1'})
    assert unknown.status_code == 421 and "allowed_hosts" in unknown.json()["detail"]
    assert injected.status_code == 421 and "#EXTM3U" not in injected.text  # never echoed into a playlist
    lines = resp.text.splitlines()
    assert lines[0].startswith('#EXTM3U url-tvg="http://tv.example:8411/iptv/xmltv.xml"')
    assert 'tvg-id="1" tvg-chno="1" tvg-name="One"' in lines[1] and 'group-title="Films"' in lines[1]
    assert lines[2] == "http://tv.example:8411/stream/channels/1.ts"
    assert lines[4] == "http://tv.example:8411/stream/channels/7.ts"
    assert 'tvg-name="Se\'ven"' in lines[3]


async def test_api_channels_and_healthz(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        health = (await c.get("/healthz")).json()
        assert health["status"] == "ok"
        assert health["event_loop"]["threshold_ms"] == 100 and health["event_loop"]["p99_ms"] >= 0
        metrics = (await c.get("/metrics")).text
        assert 'exstreamtv_event_loop_lag_seconds{stat="p99"}' in metrics
        body = (await c.get("/api/channels")).json()
    ch = body["channels"][0]
    assert ch["number"] == 1 and ch["name"] == "One" and ch["state"] == "idle"
    assert ch["breaker_state"] == "CLOSED"
    assert ch["now_playing"]["title"] == "long"
    assert ch["now_playing"]["end"] - ch["now_playing"]["start"] == 20.0 or \
        abs(ch["now_playing"]["end"] - ch["now_playing"]["start"] - 20.0) < 0.1


async def test_pipeline_stops_after_grace_when_last_viewer_leaves(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        await capture(c, "/stream/channels/1.ts", 1.5)
    ch = r.engine.channels[1]
    assert ch.running
    await asyncio.sleep(2.5)  # grace is 1 s in tests
    assert not ch.running
    assert r.engine.pool.processes(channel_id=1) == []


async def test_viewer_arriving_while_the_channel_stops_gets_a_fresh_pipeline(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    ch = r.engine.channels[1]
    async with r.client() as c:
        for delay in (0.95, 1.0, 1.05, 1.1):  # around the 1 s grace period's end
            await capture(c, "/stream/channels/1.ts", 1.0)
            await asyncio.sleep(delay)
            data = await capture(c, "/stream/channels/1.ts", 1.5)
            assert len(data) > 20_000, delay
            assert len(r.engine.pool.processes(channel_id=1, role="program")) <= 1
    await asyncio.sleep(2.5)
    assert not ch.running and r.engine.pool.processes(channel_id=1) == []
