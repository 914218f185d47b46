"""Stability core with real FFmpeg: breaker on a failing source, restart storms, crashes, kill -9."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import psutil

from .conftest import SMALL_PROFILE, channel, flaky_ffmpeg, small_config
from .test_cli import children_ffmpeg, free_port, wait_healthy

FAST_GUARDS = """
restart_guard:
  channel_cooldown_seconds: 0
  max_restarts: 1000
circuit_breaker:
  open_seconds: 3
ai_auto_heal:
  use_error_screen_fallback: false
"""


class Reader:
    """A viewer that keeps reading in the background and records when bytes arrive."""

    def __init__(self, client: httpx.AsyncClient, path: str, keep: bool = False) -> None:
        self.client, self.path = client, path
        self.bytes = 0
        self.arrivals: list[tuple[float, int]] = []
        self.status: int | None = None
        self.ended = False
        self.error: Exception | None = None
        self.keep = keep  # keep the bytes themselves, not just their count
        self.data = bytearray()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            async with self.client.stream("GET", self.path) as resp:
                self.status = resp.status_code
                async for chunk in resp.aiter_raw():
                    self.bytes += len(chunk)
                    self.arrivals.append((time.monotonic(), len(chunk)))
                    if self.keep:
                        self.data += chunk
        except httpx.HTTPError as exc:  # the server dropped the connection (kick, shutdown)
            self.error = exc
        finally:
            self.ended = True

    def bytes_since(self, t: float) -> int:
        return sum(n for at, n in self.arrivals if at >= t)

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_failing_source_opens_breaker_after_five_then_recovers(server, media, tmp_path, ffmpeg):
    src = tmp_path / "prog.mp4"
    shutil.copy(media["long"], src)
    r = await server(small_config([channel(1, "Flaky", src)], FAST_GUARDS))
    r.engine.ffmpeg, flag = flaky_ffmpeg(tmp_path, ffmpeg)  # every FFmpeg start fails (not the file)
    eng = r.engine
    brk = eng.breakers[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: brk.state.value == "OPEN", 20, "breaker to open")
        failures = eng.events.count("pipeline_failed")
        assert failures == 5
        spawned_at_open = eng.pool.spawned_total
        await asyncio.sleep(2.0)  # inside the 3 s open period: no spawn for the channel
        assert eng.pool.spawned_total == spawned_at_open
        assert eng.events.count("pipeline_failed") == 5
        refused = [e for e in eng.events.since(0) if e.kind == "restart_refused"]
        assert refused and refused[-1].data["reason"] == "circuit_open"
        # a new viewer is told why instead of hanging
        resp = await c.get("/api/breakers")
        assert resp.json()["1"]["state"] == "OPEN"
        flag.unlink()  # FFmpeg works again
        await wait_for(lambda: brk.state.value == "CLOSED", 20, "breaker to close again")
        t_closed = time.monotonic()
        await wait_for(lambda: reader.bytes_since(t_closed) > 50_000, 10, "programme bytes after recovery")
        states = [e.data["new"] for e in eng.events.since(0) if e.kind == "breaker_transition"]
        assert states[:1] == ["OPEN"] and states[-2:] == ["HALF_OPEN", "CLOSED"]
        assert reader.status == 200 and not reader.ended
        await reader.close()


async def test_restart_storm_accepts_at_most_ten(server, media):
    r = await server(small_config([channel(1, "One", media["long"])],
                                  "restart_guard:\n  channel_cooldown_seconds: 0\n"))
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: reader.bytes > 0, 10, "stream start")
        t0 = time.monotonic()
        results = await asyncio.gather(*(c.post("/api/channels/1/restart", json={}) for _ in range(100)))
        assert time.monotonic() - t0 < 5
        accepted = [x for x in results if x.status_code == 202]
        refused = [x for x in results if x.status_code == 429]
        assert len(accepted) == 10 and len(refused) == 90
        body = refused[0].json()
        assert body["accepted"] is False and body["reason"] == "global_throttle"
        assert 0 < body["retry_after_seconds"] <= 60
        await asyncio.sleep(1.5)
        assert not reader.ended and r.engine.channels[1].running
        await reader.close()


async def test_default_cooldown_and_unknown_channel(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        first = await c.post("/api/channels/1/restart", json={})
        second = await c.post("/api/channels/1/restart", json={})
        missing = await c.post("/api/channels/42/restart", json={})
        wrong = await c.post("/api/channels/x/restart", json={})
    assert first.status_code == 202 and first.json() == {"accepted": True}
    assert second.status_code == 429 and second.json()["reason"] == "channel_cooldown"
    assert 29 < second.json()["retry_after_seconds"] <= 30
    assert missing.status_code == 404 and wrong.status_code == 404
    kinds = [e.kind for e in r.engine.events.since(0)]
    assert kinds.count("restart_accepted") == 1 and kinds.count("restart_refused") == 1


async def test_sigkill_of_channel_ffmpeg_counts_one_failure_and_comes_back(server, media):
    r = await server(small_config([channel(1, "One", media["long"])], FAST_GUARDS))
    ch = r.engine.channels[1]
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: ch.current is not None and reader.bytes > 0, 10, "pipeline")
        victim = ch.current.pid
        os.kill(victim, signal.SIGKILL)
        await wait_for(lambda: ch.current is not None and ch.current.pid != victim, 10, "new pipeline")
        t = time.monotonic()
        await wait_for(lambda: reader.bytes_since(t) > 20_000, 10, "bytes from the new pipeline")
        assert r.engine.breakers[1].snapshot().failures_in_window == 1
        accepted = [e for e in r.engine.events.since(0) if e.kind == "restart_accepted"]
        assert len(accepted) == 1 and accepted[0].data["source"] == "pipeline"
        assert ch.failures == 1 and "signal 9" in ch.last_error
        assert not reader.ended
        await reader.close()
    assert not psutil.pid_exists(victim) or psutil.Process(victim).status() == psutil.STATUS_ZOMBIE


def test_kill_9_of_server_leaves_no_ffmpeg(tmp_path, media):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SMALL_PROFILE + f"channels:\n  - number: 1\n    name: One\n    lineup: [{media['long']}]\n"
                   f"  - number: 2\n    name: Two\n    lineup: [{media['long']}]\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "exstreamtv.cli", "--no-tui", "--config", str(cfg), "--host",
                             "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "d")],
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        streams = [httpx.stream("GET", f"{base}/stream/channels/{n}.ts", timeout=10) for n in (1, 2)]
        resps = [s.__enter__() for s in streams]
        for resp in resps:
            next(resp.iter_raw())
        pids = children_ffmpeg(proc.pid)
        assert len(pids) == 2
        proc.kill()  # kill -9: no handler runs
        proc.wait(10)
        deadline = time.time() + 5
        alive = pids
        while alive and time.time() < deadline:
            alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            time.sleep(0.05)
        assert alive == [], f"FFmpeg outlived kill -9 of the server: {alive}"
        for s in streams:
            try:
                s.__exit__(None, None, None)
            except Exception:
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
