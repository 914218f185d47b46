"""Metrics, protected control endpoints, hostile input and slow clients, against a real server."""

import asyncio
import socket
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from exstreamtv.engine.stream.mpegts import scan_timeline
from exstreamtv.server.app import build_app

from .conftest import channel, small_config
from .test_stability import Reader, wait_for


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_parse_and_match_the_api(server, media):
    r = await server(small_config([channel(1, "One", media["long"]), channel(2, "Two", media["a"])]))
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        await wait_for(lambda: reader.bytes > 50_000, 15, "viewer")
        await c.post("/api/channels/1/restart", json={})
        await c.post("/api/channels/1/restart", json={})  # refused: cooldown
        await asyncio.sleep(1.2)
        text = (await c.get("/metrics")).text
        pool = (await c.get("/api/pool")).json()
        sessions = (await c.get("/api/ai/sessions")).json()
        breakers = (await c.get("/api/breakers")).json()
        m = samples(text)
        assert m[("exstreamtv_sessions", (("channel", "1"), ("state", "active")))] == sessions["sessions_by_channel"]["1"]
        assert m[("exstreamtv_sessions", (("channel", "2"), ("state", "active")))] == 0
        assert m[("exstreamtv_pool_capacity", ())] == pool["capacity"]
        assert m[("exstreamtv_pool_running", ())] == pool["running"]
        assert m[("exstreamtv_breaker_state", (("channel", "1"),))] == {"CLOSED": 0, "HALF_OPEN": 1,
                                                                        "OPEN": 2}[breakers["1"]["state"]]
        assert m[("exstreamtv_restarts_total", (("outcome", "accepted"), ("reason", "api")))] == 1
        assert m[("exstreamtv_restarts_total", (("outcome", "refused"), ("reason", "channel_cooldown")))] == 1
        assert m[("exstreamtv_bytes_sent_total", (("channel", "1"),))] >= sessions["total_bytes_sent"] * 0.5
        assert m[("exstreamtv_ffmpeg_fps", (("channel", "1"),))] > 0
        assert ("exstreamtv_session_duration_seconds_count", ()) in m
        await reader.close()


async def test_control_endpoints_need_a_token_when_set(server, media):
    cfg = small_config([channel(1, "One", media["long"])])
    cfg.server.api_token = "s3cret-token"
    r = await server(cfg)
    async with r.client() as c:
        assert (await c.post("/api/channels/1/restart", json={})).status_code == 401
        bad = await c.post("/api/channels/1/restart", json={}, headers={"Authorization": "Bearer wrong"})
        assert bad.status_code == 401 and "Bearer" in bad.json()["detail"]
        assert (await c.delete("/api/ai/sessions/x")).status_code == 401
        ok = await c.post("/api/channels/1/restart", json={}, headers={"Authorization": "Bearer s3cret-token"})
        assert ok.status_code == 202
        # reading stays open: players and Plex cannot send tokens
        for path in ("/api/channels", "/iptv/channels.m3u", "/lineup.json", "/discover.json", "/healthz"):
            assert (await c.get(path)).status_code == 200


async def test_without_token_only_loopback_may_control(server, media):
    r = await server(small_config([channel(1, "One", media["long"])]))
    app = build_app(r.engine)
    remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.168.1.50", 40000)),
                               base_url="http://192.168.1.2:8411")
    local = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("127.0.0.1", 40000)),
                              base_url="http://192.168.1.2:8411")
    async with remote, local:
        resp = await remote.post("/api/channels/1/restart", json={})
        assert resp.status_code == 403 and "api_token" in resp.json()["detail"]
        assert (await remote.get("/api/channels")).status_code == 200
        assert (await local.post("/api/channels/1/restart", json={})).status_code == 202


JSON = {"Content-Type": "application/json"}
HOSTILE = [
    ("GET", "/stream/channels/abc.ts", None, 404), ("GET", "/stream/channels/-1.ts", None, 404),
    ("GET", "/stream/channels/99999999999999999999999.ts", None, 404),
    ("GET", "/stream/channels/..%2F..%2Fetc%2Fpasswd.ts", None, 404),
    ("GET", "/iptv/logos/..%2F..%2Fetc%2Fpasswd.png", None, 404), ("GET", "/iptv/logos/9.png", None, 404),
    ("POST", "/api/channels/x/restart", None, 404), ("POST", "/api/channels/1/error-screen", b"[1,2]", 400),
    ("POST", "/api/channels/1/error-screen", b"{\"seconds\": 1e309}", 400),
    ("POST", "/api/channels/1/error-screen", b"{\"seconds\": \"ten\"}", 400),
    ("POST", "/api/channels/1/error-screen", b"{\"title\": \"" + b"x" * 2000 + b"\"}", 400),
    ("POST", "/api/channels/1/error-screen", b"{" * 100_000, 413),
    ("POST", "/api/channels/1/error-screen", b"\xff\xfe garbage", 400),
    ("GET", "/api/events?since=-5", None, 400), ("GET", "/api/events?since=1e99", None, 400),
    ("GET", "/api/events?limit=99999999", None, 400), ("GET", "/api/ai/sessions?channel_id=%00", None, 400),
    ("DELETE", "/api/ai/sessions/%2e%2e", None, 404), ("GET", "/api/ai/channels/0/health", None, 404),
    ("PUT", "/api/channels", b"{}", 405), ("GET", "/stream/channels/+1.ts", None, 404),
    ("GET", "/stream/channels/%EF%BC%91.ts", None, 404), ("GET", "/api/channels/1_0", None, 404),
]


async def test_hostile_requests_get_4xx_json_and_viewers_do_not_notice(server, media, ffmpeg, tmp_path):
    r = await server(small_config([channel(1, "One", media["long"])]))
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts", keep=True)
        await wait_for(lambda: reader.bytes > 50_000, 15, "viewer")
        for _ in range(3):
            results = await asyncio.gather(*(c.request(m, p, content=b, headers=JSON) for m, p, b, _ in HOSTILE))
            for (m, p, _, want), resp in zip(HOSTILE, results):
                assert resp.status_code == want, (m, p, resp.status_code, resp.text[:200])
                assert "error" in resp.json(), (m, p)
        await asyncio.sleep(2)
        data = bytes(reader.data)
        assert not reader.ended
        await reader.close()
    tl = scan_timeline(data)
    assert tl.backwards == 0 and tl.cc_errors == 0 and tl.max_video_gap <= 1.0


async def test_slow_header_clients_are_dropped_and_others_are_served(server, media):
    cfg = small_config([channel(1, "One", media["long"])])
    cfg.server.header_timeout_seconds = 1.0
    r = await server(cfg)
    socks = []
    for _ in range(50):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", r.handle.port))
        except BlockingIOError:
            pass
        socks.append(s)
    await asyncio.sleep(0.2)
    for s in socks:
        s.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # ... and never finish the headers
    async with r.client() as c:
        reader = Reader(c, "/stream/channels/1.ts")
        t0 = time.monotonic()
        assert (await c.get("/healthz")).status_code == 200
        await asyncio.sleep(2.0)
        closed = 0
        for s in socks:
            try:
                if s.recv(100) == b"":
                    closed += 1
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed == 50
        assert time.monotonic() - t0 < 10 and reader.bytes > 50_000 and not reader.ended
        await reader.close()
    for s in socks:
        s.close()
