"""Live HLS: segments cut from the channel's one stream, HLS viewers as sessions, a real nginx
cache in front, and the HDHomeRun tuner paths and control port."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import time
from datetime import datetime

import httpx

from exstreamtv.engine import hdhr
from exstreamtv.engine.stream.broadcaster import Chunk
from exstreamtv.engine.stream.hls import Segmenter, first_sequence
from exstreamtv.engine.stream.mpegts import scan_timeline

from .conftest import channel, decode, small_config
from .test_continuity import assert_seamless
from .nginx import Nginx, free_port, nginx_config
from .test_stability import Reader, wait_for



def chunks(keys: list[float], step: float = 0.1, end: float | None = None) -> list[Chunk]:
    """Chunks every ``step`` seconds, key chunks at ``keys``."""
    end = end if end is not None else keys[-1]
    out, t, seq = [], 0.0, 0
    while t <= end + 1e-9:
        key = any(abs(t - k) < 1e-6 for k in keys)
        out.append(Chunk(seq, f"<{t:.1f}>".encode(), key, round(t, 6), b"H" if key else b""))
        seq += 1
        t = round(t + step, 6)
    return out


def test_segments_are_cut_at_keyframes_and_a_splice_keeps_them_within_the_target():
    seg = Segmenter(2.0, 3, 1.0, wall_of=lambda t: 1000.0 + t, first_seq=50)
    # GOPs of 1 s, a programme change (new keyframe) at 4.5, then GOPs of 1 s again
    for c in chunks([0, 1, 2, 3, 4, 4.5, 5.5, 6.5, 7.5, 8.5], end=8.5):
        seg.on_chunk(c)
    got = [(s.seq, s.start, round(s.duration, 3)) for s in seg.segments]
    # the GOP cut short by the change joins the next one rather than pushing a segment past the target
    assert got == [(50, 0.0, 2.0), (51, 2.0, 2.0), (52, 4.0, 1.5), (53, 5.5, 2.0)]
    assert all(s.duration <= seg.target_duration for s in seg.segments)
    first = seg.get(50).data
    assert first.startswith(b"H<0.0>") and b"<1.9>" in first and b"<2.0>" not in first  # header, keyframe first
    assert seg.get(49) is None and seg.get(54) is None
    # chained program date time: no drift between segments
    assert [s.program_date_time for s in seg.segments] == [1000.0, 1002.0, 1004.0, 1005.5]
    text = seg.playlist(lambda n: f"{n}.ts")
    assert "#EXT-X-MEDIA-SEQUENCE:51" in text  # the window: the last three
    assert "#EXT-X-TARGETDURATION:2" in text and "DISCONTINUITY" not in text
    assert text.count("#EXTINF:") == 3 and text.count("#EXT-X-PROGRAM-DATE-TIME:") == 3
    assert re.search(r"#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:44\.000Z\n#EXTINF:1\.500,\n52\.ts", text)


def test_segmenter_drops_media_before_the_first_keyframe_and_numbers_from_the_clock():
    seg = Segmenter(2.0, 6, 2.0, wall_of=lambda t: t, first_seq=first_sequence(1_000_000.0))
    assert seg.next_seq == 4_000_000  # four a second: a later run never reuses a number
    for c in chunks([0.5, 2.5, 4.5], end=4.5)[:]:
        seg.on_chunk(c)
    assert [s.start for s in seg.segments] == [0.5, 2.5]
    assert b"<0.4>" not in seg.segments[0].data
    seg.close()
    seg.on_chunk(Chunk(99, b"x", True, 9.0, b""))
    assert len(seg.segments) == 2


def without_header(segment: bytes) -> bytes:
    """A segment without the PAT/PMT it opens with (packets before its first non-PSI one)."""
    pmt = None
    i = 0
    while i < len(segment):
        pid = ((segment[i + 1] & 0x1F) << 8) | segment[i + 2]
        if pid == 0:
            pmt = ((segment[i + 15] & 0x1F) << 8) | segment[i + 16]  # the first programme's PMT PID
        elif pid != pmt:
            break
        i += 188
    return segment[i:]


LIVE = """
hls:
  segment_seconds: 2.0
session_manager:
  max_sessions_per_channel: 2
hdhr:
  tuner_count: 1
"""


async def fetch_segments(c: httpx.AsyncClient, path: str, seconds: float, got: dict[int, bytes]) -> list[str]:
    """Act as an HLS player for ``seconds``: reload the playlist, fetch every new segment."""
    playlists = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        resp = await c.get(path)
        assert resp.status_code == 200, resp.text
        playlists.append(resp.text)
        for uri in [line for line in resp.text.splitlines() if line and not line.startswith("#")]:
            seq = int(uri.removesuffix(".ts"))
            if seq not in got:
                s = await c.get(path.rsplit("/", 1)[0] + "/" + uri)
                assert s.status_code == 200
                assert s.headers["cache-control"] == "public, max-age=86400, immutable"
                got[seq] = s.content
        await asyncio.sleep(0.7)
    return playlists


async def test_live_hls_is_the_same_seamless_timeline_across_changes_and_a_kill(server, ffmpeg, media, tmp_path):
    cfg = small_config([channel(1, "One", media["a"], media["b"]), channel(2, "Two", media["c"])], LIVE)
    r = await server(cfg)
    ch = r.engine.channels[1]
    async with r.client() as c:
        t0 = time.monotonic()
        first = await c.get("/hls/channels/1/live.m3u8")  # a cold channel: waits for its first segment
        cold = time.monotonic() - t0
        assert first.status_code == 200 and first.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert first.headers["cache-control"] == "public, max-age=0, s-maxage=2"
        assert "#EXTINF:" in first.text, "never an empty playlist"
        got: dict[int, bytes] = {}
        playlists = await fetch_segments(c, "/hls/channels/1/live.m3u8", 5.0, got)
        await wait_for(lambda: ch.current is not None and ch.current_plan.kind == "program", 10, "programme")
        os.kill(ch.current.pid, signal.SIGKILL)
        playlists += await fetch_segments(c, "/hls/channels/1/live.m3u8", 9.0, got)
        # the HLS viewer is a session like any other, and takes the one tuner
        sessions = (await c.get("/api/ai/sessions")).json()["sessions"]
        hls = [s for s in sessions if s["kind"] == "hls" and s["state"] != "disconnected"]
        assert len(hls) == 1 and hls[0]["channel_id"] == 1 and hls[0]["bytes_sent"] > 100_000
        status = (await c.get("/status.json")).json()
        assert status[0]["Resource"] == "tuner0" and status[0]["VctNumber"] == "1"
        busy = await c.get("/auto/v2")
        assert busy.status_code == 503 and busy.headers["x-hdhomerun-error"] == "805 All Tuners In Use"
        # segments no longer held are gone, not made up
        assert (await c.get("/hls/channels/1/1.ts")).status_code == 404
    assert r.engine.events.count("pipeline_failed") == 1
    assert all("DISCONTINUITY" not in p for p in playlists)
    seqs = sorted(got)
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))) and len(seqs) >= 6, seqs
    for data in got.values():  # each segment stands alone: PAT first, then a keyframe
        assert data[0] == 0x47 and data[1:3] == b"\x40\x00"
    for seq in seqs[1:4]:  # each decodes by itself
        rc, err, _ = decode(ffmpeg, got[seq], tmp_path, f"{seq}.ts")
        assert rc == 0 and err.strip() == "", err
    # one timeline across programme changes and the kill: played in order (each segment's own
    # PAT/PMT aside, which a player reads per segment) the segments are the seamless stream
    joined = got[seqs[0]] + b"".join(without_header(got[s]) for s in seqs[1:])
    assert_seamless(joined, ffmpeg, tmp_path)
    # the playlist's times are the media's: durations add up to the timeline, dates follow them
    pdts = {}
    for p in playlists:
        lines = p.splitlines()
        for i, line in enumerate(lines):
            if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
                pdts[int(lines[i + 2].removesuffix(".ts"))] = (
                    datetime.fromisoformat(line.split(":", 1)[1].replace("Z", "+00:00")).timestamp(),
                    float(lines[i + 1].removeprefix("#EXTINF:").rstrip(",")))
    for s in seqs[:-1]:
        if s in pdts and s + 1 in pdts:
            assert abs(pdts[s][0] + pdts[s][1] - pdts[s + 1][0]) < 0.002
    v = scan_timeline(joined).video_pts
    assert abs((v[-1] - v[0]) - sum(pdts[s][1] for s in seqs[:-1] if s in pdts)) < 2.1
    assert cold < 8.0
    # a viewer that stops fetching leaves after three target durations; the channel then stops
    await wait_for(lambda: r.engine.hls.count == 0, 15, "the HLS session to end")
    ended = [e for e in r.engine.events.since(0, 500) if e.kind == "session_ended" and e.channel_id == 1]
    assert any("stopped fetching for 6s" in e.message for e in ended), [e.message for e in ended]
    await wait_for(lambda: not ch.running, 10, "the channel to stop")


async def test_hls_viewers_count_in_the_channel_limit(server, media):
    cfg = small_config([channel(1, "One", media["long"])], LIVE.replace("max_sessions_per_channel: 2",
                                                                        "max_sessions_per_channel: 1"))
    r = await server(cfg)
    async with r.client(headers={"user-agent": "player-1"}) as c:
        assert (await c.get("/hls/channels/1/live.m3u8")).status_code == 200
        again = await c.get("/hls/channels/1/live.m3u8")  # the same viewer: the same session
        assert again.status_code == 200
        assert len([s for s in r.engine.sessions.sessions(include_disconnected=False) if s.kind == "hls"]) == 1
        full = await c.get("/hls/channels/1/live.m3u8", headers={"user-agent": "player-2"})
        assert full.status_code == 503 and full.json()["error"] == "Max sessions reached"
        assert "retry-after" in full.headers
        ts = await c.get("/stream/channels/1.ts")
        assert ts.status_code == 503
        assert (await c.get("/hls/channels/9/live.m3u8")).status_code == 404
        assert (await c.get("/hls/channels/1/abc.ts")).status_code == 404


async def test_hdhomerun_tuner_paths_and_control_port(server, media):
    """``/auto/vN`` streams, ``/tunerI/vN`` names a tuner, and Debian's hdhomerun_config reads
    variables over the TCP control port; malformed control packets only close that connection."""
    assert shutil.which("hdhomerun_config"), "hdhomerun-config is installed by .ci/run"
    r = await server(small_config([channel(1, "One", media["long"])], "hdhr:\n  discovery_enabled: true\n"))

    def get(name: str) -> str:
        # by address: found by id, the tuner is looked for by broadcast, and this server listens on loopback
        out = subprocess.run(["hdhomerun_config", "127.0.0.1", "get", name], capture_output=True, text=True, timeout=20)
        return (out.stdout + out.stderr).strip()

    assert await asyncio.to_thread(get, "/sys/id") == r.engine.hdhr_device_id

    assert await asyncio.to_thread(get, "/sys/model") == "hdhomeruntc_atsc"
    assert await asyncio.to_thread(get, "/sys/hwmodel") == "HDTC-2US"
    assert "unknown getset variable" in await asyncio.to_thread(get, "/sys/nothing")
    for bad in (b"\x00\x04\xff\xff" + b"x" * 64, hdhr.control_request("/sys/model")[:-1] + b"\x00", b"\x00"):
        reader, writer = await asyncio.open_connection("127.0.0.1", 65001)
        writer.write(bad)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(100), 15) == b""  # closed without a reply
        writer.close()
    assert await asyncio.to_thread(get, "/sys/model") == "hdhomeruntc_atsc"
    async with r.client() as c:
        assert (await c.get("/tuner7/v1")).status_code == 404
        reader = Reader(c, "/auto/v1")  # a real client keeps reading
        await wait_for(lambda: reader.bytes > 50_000, 15, "the tuner stream")
        assert reader.status == 200
        status = (await c.get("/status.json")).json()
        assert status[0]["VctNumber"] == "1" and status[0]["TargetIP"] == "127.0.0.1"
        assert status[1] == {"Resource": "tuner1"}
        assert "ch=auto:1" in await asyncio.to_thread(get, "/tuner0/status")
        await reader.close()
        async with c.stream("GET", "/tuner1/v1") as resp:
            assert resp.status_code == 200


async def test_many_hls_viewers_through_nginx_cost_the_origin_about_one_request_per_segment(server, media, tmp_path):
    cfg = small_config([channel(1, "One", media["long"])], "hls:\n  segment_seconds: 1.0\n")
    r = await server(cfg)
    proxy = Nginx(f"127.0.0.1:{r.handle.port}", tmp_path)
    try:
        await asyncio.to_thread(proxy.wait_ready)
        base = f"http://127.0.0.1:{proxy.port}"
        viewers = 40
        got: list[dict[int, bytes]] = [{} for _ in range(viewers)]
        limits = httpx.Limits(max_connections=viewers * 2)
        async with httpx.AsyncClient(base_url=base, timeout=20, limits=limits) as c:
            first = await c.get("/hls/channels/1/live.m3u8")
            assert first.status_code == 200, first.text
            before = r.engine.hls.snapshot()
            made_before = r.engine.channels[1].hls.total_segments
            await asyncio.gather(*(fetch_segments(c, "/hls/channels/1/live.m3u8", 8.0, g) for g in got))
            after = r.engine.hls.snapshot()
            made = r.engine.channels[1].hls.total_segments - made_before
            hit = await c.get("/hls/channels/1/" + str(max(got[0])) + ".ts")
            assert hit.headers["x-cache-status"] == "HIT"
        origin_segments = after["segments_served"] - before["segments_served"]
        origin_playlists = after["playlists_served"] - before["playlists_served"]
        fetched = sum(len(g) for g in got)
        assert fetched >= viewers * 6
        # every viewer got every segment; the origin served each about once
        assert origin_segments <= made + 3, (origin_segments, made)
        assert origin_playlists <= 8 / 1.0 + 4, origin_playlists  # about one per target duration
        same = {seq: data for g in got for seq, data in g.items()}
        assert all(g[seq] == same[seq] for g in got for seq in g)
        # the cache is one viewer to the origin
        live = [s for s in r.engine.sessions.sessions(include_disconnected=False) if s.kind == "hls"]
        assert len(live) == 1 and live[0].user_agent == "exstreamtv-cache (nginx)"
    finally:
        proxy.stop()


def test_nginx_config_is_valid_as_shipped(tmp_path):
    conf = nginx_config(free_port(), "127.0.0.1:8411", tmp_path)
    exe = shutil.which("nginx") or "/usr/sbin/nginx"
    check = subprocess.run([exe, "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0 and "syntax is ok" in check.stderr, check.stderr


__all__ = ["Nginx", "fetch_segments", "decode"]
