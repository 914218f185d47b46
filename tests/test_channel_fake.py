"""Recovery, hot swap and takeover of a channel against a fake spawner: every pipeline is
``tests/fake_ffmpeg.py`` (a real process writing a valid MPEG-TS), so the channel's logic is
tested without FFmpeg, quickly, and the splices are judged on the packets."""

import asyncio
import os
import signal
import sys
from pathlib import Path

from exstreamtv.engine.guards.process_pool import default_spawner
from exstreamtv.engine.stream.continuity import continuity_report

from .conftest import channel, small_config
from .test_stability import wait_for

FAKE = str(Path(__file__).with_name("fake_ffmpeg.py"))


def fake_spawner(launched: list[list[str]]):
    """Channel pipelines (MPEG-TS on stdout) run the fake; anything else (media probes) the real tool."""

    async def spawn(argv, **kw):
        if "mpegts" in argv and "pipe:1" in argv:
            launched.append(list(argv))
            return await default_spawner([sys.executable, FAKE, *argv[1:]], **kw)
        return await default_spawner(argv, **kw)

    return spawn


async def started(server, media, extra: str = ""):
    launched: list[list[str]] = []
    r = await server(small_config([channel(1, "Fake", media["long"])], "restart_guard:\n"
                                  "  channel_cooldown_seconds: 0\n" + extra))
    r.engine.pool.spawner = fake_spawner(launched)
    viewer = await r.engine.tune(1)
    data = bytearray()

    async def read():
        while True:
            chunk = await viewer.read()
            if not chunk:
                return
            data.extend(chunk)

    task = asyncio.ensure_future(read())
    ch = r.engine.channels[1]
    await wait_for(lambda: ch.current is not None and len(data) > 50_000, 15, "fake programme on air")
    return r, ch, launched, data, task


def kinds(ch) -> list[str]:
    return [p.kind for p in ch.recent_plans]


def assert_clean(data: bytearray) -> None:
    rep = continuity_report(bytes(data))
    assert not rep.audio_gaps and not rep.audio_overlaps and not rep.video_steps, rep.summary()
    assert rep.cc_errors == 0 and rep.dts_backwards == 0 and not rep.pcr_backwards


async def test_crash_error_screen_and_return_with_the_fake(server, media):
    r, ch, launched, data, task = await started(server, media)
    victim = ch.current.pid
    os.kill(victim, signal.SIGKILL)
    await wait_for(lambda: r.engine.events.count("pipeline_failed") == 1, 10, "failure noticed")
    await wait_for(lambda: ch.current is not None and ch.current.pid != victim and
                   ch.current_plan.kind == "program", 15, "programme back")
    mark = len(data)
    await wait_for(lambda: len(data) > mark + 30_000, 10, "stream continues")
    task.cancel()
    assert kinds(ch)[:3] == ["program", "error_screen", "program"]
    assert r.engine.breakers[1].snapshot().failures_in_window == 1
    assert_clean(data)  # the spliced stream of three processes, through a crash
    assert all("pipe:1" in a for a in launched)


async def test_hot_swap_with_the_fake(server, media):
    r, ch, launched, data, task = await started(server, media, "ai_auto_heal:\n  hot_swap_enabled: true\n")
    old = ch.current.pid
    decision = r.engine.request_channel_restart(1, source="test", hot=True)
    assert decision.accepted
    await wait_for(lambda: ch.current is not None and ch.current.pid != old, 15, "swapped")
    mark = len(data)
    await wait_for(lambda: len(data) > mark + 30_000, 10, "stream continues")
    task.cancel()
    assert "error_screen" not in kinds(ch)
    assert r.engine.events.count("hot_swap") == 1 and r.engine.events.count("pipeline_failed") == 0
    assert_clean(data)


async def test_replacement_takes_over_when_the_fake_dies_before_the_swap(server, media):
    r, ch, launched, data, task = await started(server, media)
    r.engine.guard.cfg.channel_cooldown_seconds = 60  # a second restart would be refused
    old = ch.current.pid
    assert r.engine.request_channel_restart(1, source="test", hot=True).accepted
    os.kill(old, signal.SIGKILL)
    await wait_for(lambda: ch.current is not None and ch.current.pid != old and ch.current_plan.kind == "program",
                   10, "replacement on air")
    await asyncio.sleep(1.0)
    task.cancel()
    assert r.engine.events.count("standby_adopted") == 1
    assert len(r.engine.pool.processes(channel_id=1, role="program")) == 1
    assert_clean(data)
