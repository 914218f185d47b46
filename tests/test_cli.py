"""The real command: flags, config errors, the embedded demo, and clean shutdown on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from .conftest import SMALL_PROFILE

EXE = [sys.executable, "-m", "exstreamtv.cli"]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not become healthy")


def test_help_documents_every_flag():
    out = subprocess.run(EXE + ["--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for flag in ("--config", "--host", "--port", "--data-dir", "--no-tui", "--log-level"):
        assert flag in out.stdout


def test_bad_config_exits_with_one_clear_message(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("server:\n  port: 8411\nsession_manager:\n  idle_timeout_seconds: -1\n")
    out = subprocess.run(EXE + ["--no-tui", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"exstreamtv: configuration error: {cfg}:4: session_manager.idle_timeout_seconds: "
                                  "must be at least 1, got -1.0")
    assert "Traceback" not in out.stderr


def test_port_in_use_is_a_clear_error(tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        out = subprocess.run(EXE + ["--no-tui", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                                    str(tmp_path)], capture_output=True, text=True, timeout=30)
    finally:
        s.close()
    assert out.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr and "Traceback" not in out.stderr


def children_ffmpeg(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True) if "ffmpeg" in c.name()]
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_no_ffmpeg_left(tmp_path, media, sig):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_PROFILE + f"channels:\n  - number: 1\n    name: One\n    lineup: [{media['long']}]\n")
    port = free_port()
    proc = subprocess.Popen(EXE + ["--no-tui", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                                   "--data-dir", str(tmp_path / "d")], stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        with httpx.stream("GET", base + "/stream/channels/1.ts", timeout=10) as resp:
            it = resp.iter_raw()
            got = 0
            while got < 100_000:
                got += len(next(it))
            spawned = children_ffmpeg(proc.pid)
            assert spawned, "a viewer should have started an FFmpeg"
            proc.send_signal(sig)
            rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert rc == 0, err
    assert "stopped cleanly" in err
    time.sleep(0.2)
    assert not [p for p in spawned if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_embedded_demo_serves_three_channels(tmp_path, ffmpeg):
    port = free_port()
    env = dict(os.environ)
    proc = subprocess.Popen(EXE + ["--no-tui", "--host", "127.0.0.1", "--port", str(port), "--data-dir",
                                   str(tmp_path / "d")], stderr=subprocess.PIPE, text=True, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, timeout=120)
        chans = httpx.get(base + "/api/channels").json()["channels"]
        assert [c["number"] for c in chans] == [1, 2, 3]
        assert all(c["state"] == "idle" for c in chans)
        with httpx.stream("GET", base + "/stream/channels/2.ts", timeout=10) as resp:
            assert resp.headers["content-type"] == "video/mp2t"
            data = b""
            for part in resp.iter_raw():
                data += part
                if len(data) > 300_000:
                    break
        f = tmp_path / "demo.ts"
        f.write_bytes(data)
        dec = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(f), "-f", "null", "-"], capture_output=True,
                             text=True, timeout=60)
        assert dec.returncode == 0
        clips = list((tmp_path / "d" / "demo").rglob("*.mkv"))
        assert len(clips) == 6
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0


def test_sighup_reloads_the_config_of_a_headless_server(tmp_path, media):
    cfg = tmp_path / "c.yaml"
    one = f"channels:\n  - number: 1\n    name: One\n    lineup: [{media['long']}]\n"
    cfg.write_text(SMALL_PROFILE + one)
    port = free_port()
    proc = subprocess.Popen(EXE + ["--no-tui", "--config", str(cfg), "--host", "127.0.0.1", "--port", str(port),
                                   "--data-dir", str(tmp_path / "d")], stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        cfg.write_text(SMALL_PROFILE + one + f"  - number: 2\n    name: Two\n    lineup: [{media['a']}]\n")
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        names = []
        while time.time() < deadline:
            names = [c["name"] for c in httpx.get(base + "/api/channels", timeout=5).json()["channels"]]
            if names == ["One", "Two"]:
                break
            time.sleep(0.2)
        assert names == ["One", "Two"]
        cfg.write_text("channels: [oops")  # a broken file: refused, the server keeps its config
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 20
        while time.time() < deadline:
            events = httpx.get(base + "/api/events", timeout=5).json()["events"]
            if any(e["kind"] == "config_reload_failed" for e in events):
                break
            time.sleep(0.2)
        failed = [e for e in events if e["kind"] == "config_reload_failed"]
        assert failed and "c.yaml:1: YAML syntax" in failed[0]["message"]
        assert proc.poll() is None and len(httpx.get(base + "/api/channels", timeout=5).json()["channels"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
