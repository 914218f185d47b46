"""Sessions over real HTTP: the session limit, idle detection and timeout, kicks, byte accounting."""

import asyncio
import socket
import time

from .conftest import channel, small_config
from .test_stability import Reader, wait_for


async def test_51st_client_gets_503_and_starts_nothing(server, media):
    r = await server(small_config([channel(1, "One", media["long"])],
                                  "session_manager:\n  max_sessions_per_address: 100\n"))
    async with r.client(limits=__import__("httpx").Limits(max_connections=100)) as c:
        readers = [Reader(c, "/stream/channels/1.ts") for _ in range(50)]
        await wait_for(lambda: all(x.bytes > 0 for x in readers), 20, "50 viewers")
        spawned = r.engine.pool.spawned_total
        resp = await c.get("/stream/channels/1.ts")
        assert resp.status_code == 503
        assert resp.json()["error"] == "Max sessions reached"
        assert resp.json()["detail"] == {"channel_id": 1, "limit": 50}
        assert r.engine.pool.spawned_total == spawned
        assert len(r.engine.pool.processes(channel_id=1, role="program")) == 1
        summary = (await c.get("/api/ai/sessions")).json()
        assert summary["total_sessions"] == 50 and summary["sessions_by_channel"] == {"1": 50}
        for x in readers:
            await x.close()


async def test_client_that_stops_reading_goes_idle_then_is_disconnected(server, media):
    extra = ("session_manager:\n  idle_after_seconds: 0.5\n  idle_timeout_seconds: 2\n  cleanup_interval_seconds: 0.2\n")
    cfg = small_config([channel(1, "One", media["long"])], extra)
    cfg.streaming.socket_send_buffer_bytes = 16384
    r = await server(cfg)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    await asyncio.to_thread(sock.connect, ("127.0.0.1", r.handle.port))
    await asyncio.to_thread(sock.sendall, b"GET /stream/channels/1.ts HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: stuck\r\n\r\n")
    await asyncio.to_thread(sock.recv, 2048)  # headers and a little data, then never read again
    sm = r.engine.sessions
    try:
        await wait_for(lambda: any(s.state.value == "idle" for s in sm.sessions(1)), 30, "idle state")
        s = next(s for s in sm.sessions(1) if s.user_agent == "stuck")
        t_idle = time.monotonic()
        await wait_for(lambda: s.state.value == "disconnected", 10, "idle timeout")
        assert 1.0 < time.monotonic() - t_idle < 6
        assert s.disconnect_reason == "idle for 2s"
        kinds = [e.kind for e in r.engine.events.since(0) if e.data.get("session_id") == s.session_id]
        assert kinds == ["session_started", "session_idle", "session_ended"]
        # its resources are freed by the cleanup task and it shows in the history
        await wait_for(lambda: sm.get(s.session_id) is None, 5, "cleanup")
        assert sm.recent_disconnects()[0]["session_id"] == s.session_id
        # and the server dropped the socket instead of waiting for a flush that never comes
        sock.setblocking(False)
        await wait_for(lambda: _closed(sock), 10, "socket closed by the server")
    finally:
        sock.close()


def _closed(sock: socket.socket) -> bool:
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


async def test_delete_kicks_a_viewer_and_closes_its_connection(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        a, b = Reader(c, "/stream/channels/1.ts"), Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: a.bytes > 0 and b.bytes > 0, 10, "two viewers")
        sessions = (await c.get("/api/ai/sessions", params={"channel_id": 1})).json()["sessions"]
        assert len(sessions) == 2
        victim = sessions[0]["session_id"]
        resp = await c.delete(f"/api/ai/sessions/{victim}")
        assert resp.status_code == 200
        await wait_for(lambda: a.ended or b.ended, 5, "kicked connection to close")
        assert sum((a.ended, b.ended)) == 1
        left = (await c.get("/api/ai/sessions")).json()
        assert left["total_sessions"] == 1 and left["sessions"][0]["session_id"] != victim
        again = await c.delete(f"/api/ai/sessions/{victim}")
        assert again.status_code == 404 and again.json()["error"] == "Session not found"
        unknown = await c.delete("/api/ai/sessions/nope")
        assert unknown.status_code == 404
        await a.close()
        await b.close()


async def test_session_bytes_match_what_the_client_received(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        a = Reader(c, "/stream/channels/1.ts")
        await asyncio.sleep(3.0)
        summary = (await c.get("/api/ai/sessions")).json()
        got = a.bytes
        (s,) = summary["sessions"]
        assert s["state"] == "active" and s["user_agent"].startswith("python-httpx")
        assert abs(s["bytes_sent"] - got) <= 256 * 1024  # one chunk at most in flight
        assert summary["total_bytes_sent"] == s["bytes_sent"]
        assert s["current_rate_bps"] > 100_000
        await a.close()
    bad = await r.client().get("/api/ai/sessions", params={"channel_id": "x"})
    assert bad.status_code == 400 and "channel_id" in bad.json()["error"]
