"""The console attached to a running server: Pilot against the real HTTP control (server in
this process), and ``exstreamtv console`` in a real tmux pane against a headless server in
a subprocess that is killed and started again."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from exstreamtv.attach import HttpControl, find_local_server
from exstreamtv.cli import AttachedBackend
from exstreamtv.tui.app import AttachedConsoleApp

from .conftest import channel, small_config
from .test_console import notes, until
from .test_recovery import MAGENTA
from .test_stability import Reader, wait_for

ROOT = Path(__file__).resolve().parent.parent


async def test_attached_console_panels_and_commands(server, media, tmp_path):
    r = await server(small_config([channel(1, "Attached One", media["long"]), channel(2, "Attached Two", media["a"])],
                                  MAGENTA))
    app = AttachedConsoleApp(AttachedBackend(r.base, None, tmp_path), refresh_seconds=0.3)
    async with app.run_test(size=(120, 40)) as pilot:
        async with r.client() as c:
            reader = Reader(c, "/stream/channels/1.ts")
            await until(pilot, lambda: app.control is not None and app.last_snapshot is not None, what="attach")
            await until(pilot, lambda: app.query_one("#sessions").row_count == 1, what="the viewer listed")
            channels = app.query_one("#channels")
            assert "Attached One" in str(channels.get_row_at(0))
            assert "attached" in str(app.query_one("#status-line").render())
            assert app.active_bindings["q"].binding.description == "Detach (server keeps running)"  # the footer
            info = app.control.describe()
            assert info.mode == "attached" and info.connected and not info.read_only
            # r: restart through the guards, then the refusal with its reason
            await pilot.press("r")
            await pilot.pause(0.2)
            await pilot.press("y")
            await until(pilot, lambda: any("accepted" in n for n in notes(app)), what="restart accepted")
            assert r.engine.events.count("restart_accepted") == 1
            await pilot.press("r")
            await pilot.pause(0.2)
            await pilot.press("y")
            await until(pilot, lambda: any("channel_cooldown" in n for n in notes(app)), what="refusal reason")
            # the events arrive over the stream
            events = app.query_one("#events")
            await until(pilot, lambda: events.last_event_id >= max(e.id for e in r.engine.events.since(0)) - 5,
                        what="events streamed")
            # e: the frame rendered by the server
            await pilot.press("e")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ErrorScreenPreview", what="preview")
            await until(pilot, lambda: "▀" in str(app.screen.query_one("#preview-image").render()), 30,
                        "server-rendered frame")
            await pilot.press("escape")
            # k: kick the viewer
            app.kick_session(app.last_snapshot.sessions[0]["session_id"])
            await until(pilot, lambda: reader.ended, what="kicked")
            await reader.close()
        spawned = r.engine.pool.spawned_total
        await pilot.press("q")
        await pilot.pause(0.5)
    assert r.engine.channels[1].running or r.engine.pool.spawned_total >= spawned  # the server kept running
    assert (await asyncio.to_thread(httpx.get, r.base + "/healthz")).status_code == 200


async def test_tokenless_console_of_a_token_server_is_read_only(server, media, tmp_path):
    cfg = small_config([channel(1, "One", media["long"])])
    cfg.server.api_token = "s3cret"
    r = await server(cfg)
    control = HttpControl(r.base, None, refresh_seconds=0.2)
    control.start()
    try:
        await wait_for(lambda: control.describe().connected, 10, "connected")
        try:
            control.snapshot()
        except Exception:
            pass
        await wait_for(lambda: control.read_only, 10, "read-only detected")
        result = await control.restart(1)
        assert not result.ok and "Read-only" in result.message
        assert r.engine.events.count("restart_accepted") == 0
        with_token = HttpControl(r.base, "s3cret")
        with_token.start()
        assert (await with_token.restart(1)).ok
        await with_token.close()
    finally:
        await control.close()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20).stdout


def pane(name: str) -> str:
    return tmux("capture-pane", "-p", "-t", name)


def wait_pane(name: str, cond, timeout: float, what: str) -> str:
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = pane(name)
        if cond(text):
            return text
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; pane:\n{text}")


def test_console_in_tmux_survives_the_server(tmp_path, media):
    assert shutil.which("tmux"), "tmux is installed by .ci/run"
    port = free_port()
    data = tmp_path / "data"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("ffmpeg:\n  width: 320\n  height: 180\n  fps: 15\n  preset: ultrafast\n"
                   f"channels:\n  - number: 1\n    name: Tmux One\n    lineup: [{media['long']}]\n")

    def start_server() -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "exstreamtv.cli", "--no-tui", "--host", "127.0.0.1", "--port",
                              str(port), "--data-dir", str(data), "--config", str(cfg)],
                             stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200 and \
                        (data / "server.json").exists():
                    return p
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("server did not start")

    server = start_server()
    name = f"exstv-attach-{os.getpid()}"
    try:
        url, token = find_local_server(data)  # what the console finds by itself
        assert url == f"http://127.0.0.1:{port}" and token is None
        tmux("new-session", "-d", "-s", name, "-x", "140", "-y", "40",
             f"cd {ROOT} && exec env -u COLUMNS -u LINES {sys.executable} -m exstreamtv.cli console "
             f"--data-dir {data}")
        tmux("resize-window", "-t", name, "-x", "140", "-y", "40")
        wait_pane(name, lambda t: "Tmux One" in t and "attached" in t, 30, "panels filled")
        httpx.post(f"http://127.0.0.1:{port}/api/channels/1/restart", json={}, timeout=10)
        wait_pane(name, lambda t: "restart of channel 1 accepted" in t.lower(), 15, "event streamed")
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        wait_pane(name, lambda t: "disconnected from" in t and "retrying" in t, 20, "disconnected")
        server = start_server()
        httpx.post(f"http://127.0.0.1:{port}/api/channels/1/restart", json={}, timeout=10)
        text = wait_pane(name, lambda t: "disconnected" not in t and t.lower().count("accepted") >= 2, 30,
                         "reconnected with the new events")
        assert "Tmux One" in text
        tmux("send-keys", "-t", name, "q")
        time.sleep(1.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200  # still running
    finally:
        tmux("kill-session", "-t", name)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
