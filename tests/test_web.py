"""The web page in a real browser (Debian's headless Chromium): channels with now/next, the
operator's view, and the hls.js player playing across programme changes and an FFmpeg kill."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time

from .browser import Browser, chromium_path
from .conftest import channel, small_config
from .test_stability import wait_for

HLS_JS_SHA256 = "413a83e2bb0c77ed0bf0be105d539d17ef45dfd984a0b13ecd3b14a901383938"  # hls.js 1.6.15, dist/hls.min.js


async def test_the_page_serves_the_vendored_player_and_no_cdn(server, media):
    r = await server(small_config([channel(1, "One", media["a"])]))
    async with r.client() as c:
        page = await c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere at run time
        js = await c.get("/web/vendor/hls.min.js")
        assert js.status_code == 200 and hashlib.sha256(js.content).hexdigest() == HLS_JS_SHA256
        lic = await c.get("/web/vendor/hls.js-LICENSE.txt")
        assert lic.status_code == 200 and "Apache License" in lic.text
        ov = (await c.get("/api/overview")).json()
        now, nxt = ov["channels"][0]["now"][0], ov["channels"][0]["next"][0]
        assert now["title"] == nxt["title"] == "Clip A"  # one programme, looped
        assert now["start"] <= ov["now"] < now["end"] and abs(nxt["start"] - now["end"]) < 0.01
        assert ov["channels"][0]["hls"] == "/hls/channels/1/live.m3u8"
        assert (await c.get("/web/../engine/config.py")).status_code == 404


async def test_browser_plays_a_minute_across_programme_changes_and_a_kill(server, media, ffmpeg, tmp_path):
    assert chromium_path(), "Debian's chromium is installed by .ci/run"
    cfg = small_config([channel(1, "Clips", media["a"], media["b"]), channel(2, "Long", media["long"])])
    r = await server(cfg)
    ch = r.engine.channels[1]
    browser = await Browser().start()
    try:
        await browser.goto(f"{r.base}/?channel=1")
        await wait_for_js(browser, "window.exstreamtv && window.exstreamtv.startupMs !== null", 20, "playback")
        startup_ms = await browser.eval("window.exstreamtv.startupMs")
        start_time = await browser.eval("document.getElementById('video').currentTime")
        t0 = time.monotonic()
        samples = []
        killed = False
        while time.monotonic() - t0 < 60:
            await asyncio.sleep(1.0)
            samples.append(await browser.eval("document.getElementById('video').currentTime"))
            if not killed and time.monotonic() - t0 > 25 and ch.current is not None \
                    and ch.current_plan.kind == "program":
                os.kill(ch.current.pid, signal.SIGKILL)
                killed = True
        watched = await browser.eval(
            "({stalls: window.exstreamtv.stalls, errors: window.exstreamtv.errors.filter(e => e.fatal),"
            " waiting: window.exstreamtv.waitingSince === null ? 0 : performance.now() - window.exstreamtv.waitingSince,"
            " names: [...document.querySelectorAll('#channels .name')].map(e => e.textContent),"
            " now: [...document.querySelectorAll('#channels .now')].map(e => e.textContent),"
            " logos: [...document.querySelectorAll('#channels img')].map(i => i.naturalWidth),"
            " ops: document.querySelectorAll('#ops tbody tr').length})")
        shot = tmp_path / "web.png"
        await browser.screenshot(shot)
    finally:
        await browser.close()
    assert killed and r.engine.events.count("pipeline_failed") >= 1
    changes = [p for p in ch.recent_plans if p.kind == "program"]
    assert len(changes) >= 10  # 3-second programmes: many boundaries inside the minute
    advanced = samples[-1] - start_time
    assert advanced > 55, (start_time, samples)
    assert all(b >= a for a, b in zip(samples, samples[1:])), samples
    assert all(s["ms"] < 1000 for s in watched["stalls"]), watched["stalls"]
    assert watched["waiting"] < 1000 and not watched["errors"], watched
    assert watched["names"] == ["1  Clips", "2  Long"]
    assert watched["now"][0].startswith("Now: ") and all(w > 0 for w in watched["logos"])
    assert watched["ops"] == 2
    assert startup_ms < 10_000
    assert shot.stat().st_size > 10_000


async def wait_for_js(browser: Browser, expression: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await browser.eval(f"Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


__all__ = ["wait_for"]
