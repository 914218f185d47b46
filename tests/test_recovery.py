"""The product's promise with real FFmpeg: viewers' streams survive crashes, failing sources,
operator slates and hot swaps inside the same HTTP response."""

import asyncio
import os
import shutil
import signal
import time

from exstreamtv.engine.stream.mpegts import scan_timeline

from .conftest import channel, decode, flaky_ffmpeg, small_config
from .frames import classify_frames
from .test_continuity import assert_seamless
from .test_stability import Reader, wait_for

MAGENTA = """
error_screen:
  background_color: "#ff00ff"
  visual_mode: slate
"""


def frame_kinds(ffmpeg, data: bytes, tmp_path, name="cap.ts") -> list[str]:
    """'E' for an error-screen frame (mostly magenta), 'P' for a programme frame, in stream order."""
    f = tmp_path / name
    f.write_bytes(data)
    return [kind for _, kind in classify_frames(ffmpeg.path, f)]


def runs(kinds: list[str]) -> str:
    out = ""
    for k in kinds:
        if not out or out[-1] != k:
            out += k
    return out


async def test_sigkill_while_two_watch_error_screen_then_programme(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"])], MAGENTA))
    ch = r.engine.channels[1]
    async with r.client() as c:
        a, b = Reader(c, "/stream/channels/1.ts", keep=True), Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: ch.current is not None and a.bytes > 50_000 and b.bytes > 50_000, 15, "viewers")
        await asyncio.sleep(1.0)
        victim = ch.current.pid
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: ch.current is not None and ch.current.pid != victim and
                       ch.current_plan.kind == "program", 15, "programme back")
        await asyncio.sleep(3.0)
        assert not a.ended and not b.ended
        datas = [bytes(a.data), bytes(b.data)]
        await a.close()
        await b.close()
    for i, data in enumerate(datas):
        rc, err, _ = decode(ffmpeg, data, tmp_path, f"v{i}.ts")
        assert rc == 0 and err.strip() == "", err
        tl = scan_timeline(data)
        assert tl.backwards == 0 and tl.cc_errors == 0
        assert tl.max_video_gap <= 1.0, tl.max_video_gap
        assert runs(frame_kinds(ffmpeg, data, tmp_path, f"k{i}.ts")) == "PEP"
        assert_seamless(data)  # sound, pictures, PCR and counters run through both splices
    assert r.engine.events.count("pipeline_failed") == 1


async def test_failing_source_shows_error_screen_with_return_time_then_programme(server, media, ffmpeg, tmp_path):
    src = tmp_path / "prog.mp4"
    shutil.copy(media["long"], src)
    extra = MAGENTA + "restart_guard:\n  channel_cooldown_seconds: 0\n  max_restarts: 1000\ncircuit_breaker:\n" \
                      "  open_seconds: 3\n"
    r = await server(small_config([channel(1, "Flaky", src)], extra))
    r.engine.ffmpeg, flag = flaky_ffmpeg(tmp_path, ffmpeg)  # FFmpeg itself fails (not the file)
    eng = r.engine
    ch = eng.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: eng.breakers[1].state.value == "OPEN", 30, "breaker open")
        assert eng.events.count("pipeline_failed") == 5
        await asyncio.sleep(1.0)
        assert ch.current is not None and ch.current_plan.kind == "error_screen"
        info = [p for p in ch.recent_plans if p.kind == "error_screen"][-1]
        files = [a.split("textfile=")[1].split(":")[0] for a in info.argv[info.argv.index("-i") + 1].split(",")
                 if "textfile=" in a]
        texts = [open(f).read() for f in files]
        assert any("Back at about" in t for t in texts) and any("Channel 1" in t for t in texts)
        flag.unlink()
        await wait_for(lambda: eng.breakers[1].state.value == "CLOSED", 30, "breaker closed")
        await asyncio.sleep(3.0)
        data = bytes(reader.data)
        assert not reader.ended
        await reader.close()
    rc, err, _ = decode(ffmpeg, data, tmp_path)
    assert rc == 0 and err.strip() == "", err
    kinds = frame_kinds(ffmpeg, data, tmp_path)
    assert runs(kinds).startswith("E") and runs(kinds).endswith("EP")
    tl = scan_timeline(data)
    assert tl.backwards == 0 and tl.max_video_gap <= 1.0


async def test_hot_swap_shows_no_error_screen_and_no_gap(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"])], MAGENTA))
    ch = r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: ch.current is not None and reader.bytes > 50_000, 15, "viewer")
        await asyncio.sleep(1.0)
        old = ch.current.pid
        resp = await c.post("/api/channels/1/restart", json={})
        assert resp.status_code == 202
        await wait_for(lambda: ch.current is not None and ch.current.pid != old, 15, "swap")
        await asyncio.sleep(2.5)
        data = bytes(reader.data)
        await reader.close()
    assert r.engine.events.count("hot_swap") == 1
    rc, err, _ = decode(ffmpeg, data, tmp_path)
    assert rc == 0 and err.strip() == "", err
    assert "E" not in frame_kinds(ffmpeg, data, tmp_path)
    assert_seamless(data)
    tl = scan_timeline(data)
    assert tl.backwards == 0 and tl.cc_errors == 0 and tl.max_video_gap <= 1.0


async def test_operator_slate_via_api_then_programme(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"])], MAGENTA))
    ch = r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: ch.current is not None and reader.bytes > 50_000, 15, "viewer")
        bad = await c.post("/api/channels/1/error-screen", json={"seconds": 2, "visual_mode": "sparkles"})
        assert bad.status_code == 400 and "sparkles" in bad.json()["error"]
        bad = await c.post("/api/channels/1/error-screen", content=b"{nope", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"] == "Malformed JSON body"
        resp = await c.post("/api/channels/1/error-screen", json={"seconds": 2, "title": "Maintenance: 5 min"})
        assert resp.status_code == 202
        t0 = time.monotonic()
        await wait_for(lambda: ch.current_plan is not None and ch.current_plan.kind == "error_screen", 5, "slate")
        await wait_for(lambda: ch.current_plan.kind == "program" and time.monotonic() - t0 > 2, 15, "programme")
        await asyncio.sleep(2.0)
        data = bytes(reader.data)
        health = (await c.get("/api/ai/channels/1/health")).json()
        await reader.close()
    assert runs(frame_kinds(ffmpeg, data, tmp_path)) == "PEP"
    tl = scan_timeline(data)
    assert tl.backwards == 0 and tl.max_video_gap <= 1.0
    assert_seamless(data)
    for key in ("channel_id", "status", "current_fps", "current_speed", "current_bitrate_kbps", "dropped_frames",
                "sessions_active", "breaker_state", "restarts", "last_error", "uptime_seconds", "history"):
        assert key in health
    assert health["status"] in ("healthy", "degraded") and health["sessions_active"] == 1
    assert health["history"] and health["current_fps"] > 0


async def test_a_bug_in_the_supervisor_does_not_leave_viewers_hanging(server, media, monkeypatch):
    r = await server(small_config([channel(1, "One", media["long"])]))
    ch = r.engine.channels[1]
    real = ch.plan_program
    calls = {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected bug")
        return real(*a, **kw)

    monkeypatch.setattr(ch, "plan_program", flaky)
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: ch.current is not None and reader.bytes > 20_000, 15, "viewer")
        ch.restart()  # the next plan raises
        await wait_for(lambda: calls["n"] >= 3 and ch.current is not None, 15, "supervisor back")
        mark = reader.bytes
        await wait_for(lambda: reader.bytes > mark + 30_000, 15, "stream continues")
        assert not reader.ended and ch.last_error == "internal error (see log)"
        await reader.close()


async def test_auto_heal_recovers_a_stalled_pipeline(server, media, ffmpeg, tmp_path):
    extra = MAGENTA + ("ai_auto_heal:\n  check_interval_seconds: 0.3\n  min_error_screen_seconds: 1\n"
                       "health:\n  no_progress_seconds: 1.0\n")
    r = await server(small_config([channel(1, "One", media["long"])], extra))
    ch = r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: ch.current is not None and reader.bytes > 50_000, 15, "viewer")
        await asyncio.sleep(1.0)
        frozen = ch.current.pid
        os.kill(frozen, signal.SIGSTOP)  # alive but making no progress: only health monitoring can tell
        try:
            await wait_for(lambda: r.engine.events.count("auto_heal") == 1, 15, "auto-heal")
            await wait_for(lambda: ch.current is not None and ch.current.pid != frozen
                           and ch.current_plan.kind == "program", 20, "programme back")
        finally:
            try:
                os.kill(frozen, signal.SIGCONT)
            except ProcessLookupError:
                pass
        await asyncio.sleep(2.0)
        data = bytes(reader.data)
        await reader.close()
    failed = [e for e in r.engine.events.since(0) if e.kind == "pipeline_failed"]
    assert len(failed) == 1 and "unhealthy" in failed[0].data["reason"]
    assert r.engine.breakers[1].snapshot().failures_in_window == 1
    kinds = runs(frame_kinds(ffmpeg, data, tmp_path))
    assert kinds == "PEP", kinds
    tl = scan_timeline(data)
    assert tl.backwards == 0 and tl.max_video_gap <= 1.0
