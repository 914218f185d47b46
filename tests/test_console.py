"""The console: Pilot against a real engine, stable snapshots, and a real terminal through tmux."""

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exstreamtv.tui.app import ConsoleApp

from .conftest import SMALL_PROFILE, channel, ffmpeg_children, small_config
from .console_fakes import FakeControl, fake_snapshot
from .test_recovery import MAGENTA
from .test_stability import Reader

SNAPSHOTS = Path(__file__).parent / "snapshots"


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def until(pilot, cond, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


async def test_console_against_a_real_engine(media, tmp_path, embedded):
    cfg = small_config([channel(1, "Console One", media["long"]), channel(2, "Console Two", media["long"])],
                       MAGENTA)
    app = ConsoleApp(embedded(cfg), refresh_seconds=0.3, config=cfg)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.control is not None, what="engine start")
        import httpx

        base = app.control.urls[0]
        async with httpx.AsyncClient(base_url=base, timeout=20) as c:
            reader = Reader(c, "/stream/channels/1.ts", keep=True)
            await until(pilot, lambda: reader.bytes > 20_000, what="viewer bytes")
            channels = app.query_one("#channels")
            sessions = app.query_one("#sessions")
            # the table follows the engine at the refresh rate; a loaded machine may take a few refreshes
            await until(pilot, lambda: sessions.row_count == 1, what="the viewer's session row")
            assert "Console One" in str(channels.get_row_at(0)) and "Console Two" in str(channels.get_row_at(1))
            assert "127.0.0.1" in str(sessions.get_row_at(0))
            # r: the channel has a viewer, so it asks first
            await pilot.press("r")
            await pilot.pause(0.2)
            await pilot.press("y")
            await until(pilot, lambda: any("accepted" in n for n in notes(app)), what="restart accepted")
            engine = app.handle.engine
            assert engine.events.count("restart_accepted", source="console") == 1
            await pilot.press("r")
            await pilot.pause(0.2)
            await pilot.press("y")
            await until(pilot, lambda: any("channel_cooldown" in n for n in notes(app)), what="cooldown refusal")
            refusal = [n for n in notes(app) if "refused" in n][-1]
            assert re.search(r"retry in \d+s", refusal)
            # e: preview, then Enter puts the slate on air and the viewer receives it
            await pilot.press("e")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ErrorScreenPreview", what="preview")
            await until(pilot, lambda: "▀" in str(app.screen.query_one("#preview-image").render()), 20,
                        "preview image")
            app.screen.query_one("#seconds").value = "3"
            await pilot.press("enter")
            await until(pilot, lambda: engine.channels[1].current_plan is not None
                        and engine.channels[1].current_plan.kind == "error_screen", what="slate on air")
            mark = len(reader.data)
            await until(pilot, lambda: len(reader.data) - mark > 30_000, what="slate bytes")
            await reader.close()
        from .test_recovery import frame_kinds

        assert "E" in frame_kinds(engine.ffmpeg, bytes(reader.data), tmp_path)
        # q: graceful shutdown, no FFmpeg left
        await pilot.press("q")
        await until(pilot, lambda: app.return_value is not None or not app.is_running, 30, "exit")
    assert engine.pool.running == 0
    assert ffmpeg_children() == []


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
async def test_main_screen_snapshot(size, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    app = ConsoleApp(control=FakeControl(fake_snapshot(channels=5, sessions=7)), refresh_seconds=3600)
    async with app.run_test(size=size) as pilot:
        await pilot.pause(0.3)
        svg = app.export_screenshot()
    svg = re.sub(r"terminal-\d+", "terminal", svg)
    ref = SNAPSHOTS / f"main_{size[0]}x{size[1]}.svg"
    if os.environ.get("EXSTREAMTV_UPDATE_SNAPSHOTS") or not ref.exists():
        ref.write_text(svg)
    assert svg == ref.read_text(), f"console rendering changed; compare with {ref} (set EXSTREAMTV_UPDATE_SNAPSHOTS=1)"
    for text in ("Channel 01 News", "OPEN", "192.168.1.10", "rejected 2", "channel_cooldown"):
        assert text.replace(" ", "&#160;") in svg or text in svg


async def test_console_keys_with_fake_engine():
    fake = FakeControl(fake_snapshot(channels=5, sessions=7))
    app = ConsoleApp(control=fake, refresh_seconds=3600)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("down", "r")  # channel 2 has viewers: confirmation first
        await pilot.pause(0.1)
        await pilot.press("n")
        assert fake.commands == []
        await pilot.press("r", "y")
        await pilot.pause(0.1)
        assert fake.commands == [("restart", 2)]
        await pilot.press("tab", "k")
        await pilot.pause(0.1)
        assert fake.commands[-1][0] == "kick"
        await pilot.press("slash")
        for ch in "Movies":
            await pilot.press(ch)
        await pilot.pause(0.1)
        table = app.query_one("#channels")
        assert table.row_count == 2 and all("Movies" in str(table.get_row_at(i)) for i in range(2))
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert table.row_count == 5
        await pilot.press("question_mark")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.press("s")
        await pilot.pause(0.1)
        assert any("sorted by" in n for n in notes(app))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_real_terminal_through_tmux(media, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_PROFILE + f"channels:\n  - number: 4\n    name: Tmux Channel\n    lineup: [{media['long']}]\n")
    from .test_cli import free_port

    port = free_port()
    session = f"exstv{os.getpid()}"
    cmd = (f"cd {Path.cwd()} && {sys.executable} -m exstreamtv.cli --config {cfg} --host 127.0.0.1 --port {port} "
           f"--data-dir {tmp_path / 'd'}; echo EXITED=$? > {tmp_path / 'rc'}")
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", cmd], check=True)
    try:
        screen = ""
        deadline = time.time() + 40
        while time.time() < deadline and "Tmux Channel" not in screen:
            time.sleep(0.5)
            screen = subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True,
                                    text=True).stdout
        assert "Tmux Channel" in screen, screen
        assert "Channels" in screen and "Process pool" in screen and "Quit" in screen
        assert f"127.0.0.1:{port}" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "q"], check=True)
        deadline = time.time() + 30
        while time.time() < deadline and not (tmp_path / "rc").exists():
            time.sleep(0.3)
        assert (tmp_path / "rc").read_text().strip() == "EXITED=0"
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
