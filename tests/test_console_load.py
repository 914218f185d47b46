"""The console must never stall the stream: a refresh costs the rows on screen, data is never
markup, a failing panel never ends the app, and the engine measures its own loop lag."""

import asyncio
import time

from exstreamtv.engine.clock import FakeClock
from exstreamtv.engine.observe.events import EventLog
from exstreamtv.engine.observe.loop_lag import LoopLagMonitor
from exstreamtv.engine.sessions import SessionManager
from exstreamtv.engine.config import SessionManagerConfig
from exstreamtv.tui.app import ConsoleApp

from .console_fakes import FakeControl, fake_snapshot


async def _cells_per_refresh(sessions: int, size=(120, 40)) -> tuple[int, int, int]:
    fake = FakeControl(fake_snapshot(channels=5, sessions=sessions))
    app = ConsoleApp(control=fake, refresh_seconds=3600)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.2)
        table = app.query_one("#sessions")
        table.focus()
        costs = []
        for _ in range(3):
            for s in fake.snap.sessions:  # every row changes, as in a live engine
                s["bytes_sent"] += 1000
                s["duration_seconds"] += 1
            before = table.cells_rendered
            app.refresh_panels()
            await pilot.pause()
            costs.append(table.cells_rendered - before)
        assert table.row_count == sessions
        return max(costs), fake.queries[-1].sessions_limit, table.page_size()


async def test_a_refresh_costs_the_rows_on_screen_not_all_rows():
    small, limit_small, visible = await _cells_per_refresh(50)
    large, limit_large, _ = await _cells_per_refresh(5000)
    columns = 6
    # only the rows on screen are formatted, and only a screenful is asked of the engine
    assert 0 < small <= (visible + 1) * columns
    assert large == small
    assert limit_small == limit_large < 100


async def test_scrolling_the_sessions_fetches_the_rows_in_view():
    fake = FakeControl(fake_snapshot(channels=3, sessions=3000))
    app = ConsoleApp(control=fake, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        table = app.query_one("#sessions")
        table.focus()
        await pilot.press("end")
        await pilot.pause(0.2)
        assert fake.queries[-1].sessions_offset > 2900
        key = table.selected_key()
        ordered = sorted(fake.snap.sessions, key=lambda s: s["client_addr"])
        assert key == ordered[-1]["session_id"]
        await pilot.press("k")
        await pilot.pause(0.1)
        assert fake.commands[-1] == ("kick", key)


async def test_titles_and_names_are_text_never_markup():
    snap = fake_snapshot(channels=3, sessions=2)
    snap.channels[0]["name"] = "Best of [/r/videos] 2024"
    snap.channels[0]["now_playing"]["title"] = "Show [x265] S01E01"
    snap.channels[1]["name"] = "[bold red]not bold[/]"
    snap.sessions[0]["client_addr"] = "[link=x]evil[/link]"
    snap.events.append({"id": 99, "timestamp": snap.now, "kind": "pipeline_failed",
                        "message": "file [/r/videos] failed", "channel_id": 1, "data": {}})
    app = ConsoleApp(control=FakeControl(snap), refresh_seconds=3600)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.pause(0.3)
        channels = app.query_one("#channels")
        rows = [channels.get_row_at(i) for i in range(channels.row_count)]
        assert any("Best of [/r/videos] 2024" in r for r in rows)
        assert any("Show [x265] S01E01" in r for r in rows)
        assert any("[bold red]not bold[/]" in r for r in rows)
        svg = app.export_screenshot().replace("&#160;", " ")
        assert "[/r/videos]" in svg and "[x265]" in svg and "[link=x]evil[/link]" in svg
        assert app.is_running and not app.panel_errors


async def test_a_failing_panel_is_shown_and_the_console_keeps_running():
    snap = fake_snapshot(channels=3, sessions=2)
    snap.channels[1]["ffmpeg"] = None  # a malformed snapshot: the channels panel cannot render it
    app = ConsoleApp(control=FakeControl(snap), refresh_seconds=3600)
    async with app.run_test(size=(120, 30)) as pilot:
        await pilot.pause(0.3)
        assert "channels" in app.panel_errors
        line = str(app.query_one("#status-line").render())
        assert "channels panel error" in line
        assert app.query_one("#sessions").row_count == 2  # the other panels still work
        assert app.is_running


def test_loop_lag_figures_and_one_event_per_interval():
    clock = FakeClock()
    events = EventLog(clock)
    mon = LoopLagMonitor(clock, events, interval=0.1, threshold=0.1, event_every=10)
    for k in range(100):
        clock.advance(0.1)
        mon.record(0.002 if k != 50 else 0.4)
    snap = mon.snapshot()
    assert snap["max_ms"] == 400 and snap["current_ms"] == 2 and snap["over_threshold"] == 1
    assert snap["p99_ms"] == 400  # 1 sample in 100
    assert events.count("loop_lag") == 1
    mon.record(0.3)  # within 10 s of the last event: counted, no new event
    assert events.count("loop_lag") == 1 and mon.over_threshold == 2
    clock.advance(10)
    mon.record(0.2)
    assert events.count("loop_lag") == 2
    assert "300 ms" in events.since(0)[-1].message  # the worst since the last event


async def test_loop_lag_is_measured_on_the_real_loop():
    clock = FakeClock()
    mon = LoopLagMonitor(__import__("exstreamtv.engine.clock", fromlist=["SystemClock"]).SystemClock(),
                         EventLog(clock), interval=0.02)
    mon.start()
    await asyncio.sleep(0.1)
    time.sleep(0.25)  # a blocking call on the loop
    await asyncio.sleep(0.1)
    mon.stop()
    assert mon.max_ever >= 0.2
    assert mon.events.count("loop_lag") == 1


def test_session_page_sorts_filters_and_slices():
    clock = FakeClock()
    sm = SessionManager(SessionManagerConfig(max_sessions_per_channel=10_000, max_sessions_per_address=10_000), clock, EventLog(clock))
    made = [sm.create(1 + k % 3, f"10.0.0.{k}:1{k:03d}", "VLC") for k in range(300)]
    for k, s in enumerate(made):
        s.bytes_sent = k * 10
    total, page = sm.page("bytes", True, "", 0, 5)
    assert total == 300 and [p["bytes_sent"] for p in page] == [2990, 2980, 2970, 2960, 2950]
    total, page = sm.page("client", False, "10.0.0.29", 0, 50)
    assert total == 11 and all("10.0.0.29" in p["client_addr"] for p in page)
    total, page = sm.page("ch", False, "", 295, 50)
    assert total == 300 and len(page) == 5
    assert sm.live_counts() == {1: 100, 2: 100, 3: 100}


async def test_header_shows_the_background_media_probe():
    snap = fake_snapshot(channels=2, sessions=1)
    snap.scan = {"active": True, "total": 2000, "done": 500, "failed": 3, "rate_per_second": 20.0,
                 "eta_seconds": 75.0}
    app = ConsoleApp(control=FakeControl(snap), refresh_seconds=3600)
    async with app.run_test(size=(160, 30)) as pilot:
        await pilot.pause(0.2)
        line = str(app.query_one("#status-line").render())
        assert "probing 500/2000" in line and "ETA 1:15" in line and "██░░░░░░" in line
