"""Health rules on a fake clock: byte flow with frozen timestamps is not health."""

from types import SimpleNamespace

from exstreamtv.engine.broadcaster import Broadcaster
from exstreamtv.engine.channel import ChannelState
from exstreamtv.engine.circuit_breaker import CircuitBreaker
from exstreamtv.engine.clock import FakeClock
from exstreamtv.engine.config import CircuitBreakerConfig, HealthConfig, StreamingConfig
from exstreamtv.engine.health import HealthMonitor, HealthStatus
from exstreamtv.engine.mpegts import CLOCK, OutPacket
from exstreamtv.engine.pacer import Pacer
from exstreamtv.engine.progress import ProgressSample
from exstreamtv.engine.store import Store


def fake_channel(clock):
    b = Broadcaster()
    pacer = Pacer(clock, b, lead=1.0)
    return SimpleNamespace(number=1, breaker=CircuitBreaker(1, CircuitBreakerConfig(), clock), running=True,
                           state=ChannelState.PLAYING, last_error="", slate_active=False, pacer=pacer,
                           progress=ProgressSample(fps=30, speed=1.0), progress_at=clock.monotonic(),
                           streaming=StreamingConfig(readahead_seconds=3.0), broadcaster=b, restarts=0,
                           started_at=clock.monotonic())


def packet(t: float, key: bool = False) -> OutPacket:
    return OutPacket(bytearray(b"\x47\x01\x00\x10" + b"\x00" * 184), int(t * CLOCK), key, 0x100, True)


def feed(ch, clock, seconds: float, frozen: bool = False) -> None:
    """One packet per 1/30 s of media; ``frozen`` keeps every timestamp at the first one."""
    t0 = ch.pacer.released_time / CLOCK if ch.pacer.released_time else 10.0
    for k in range(int(seconds * 30)):
        ch.pacer.push([packet(t0 if frozen else t0 + k / 30, k % 30 == 0)])
        clock.advance(1 / 30)
        ch.pacer.release_due()
        ch.progress_at = clock.monotonic()


def test_healthy_then_frozen_timestamps_are_unhealthy_even_with_bytes_flowing():
    clock = FakeClock()
    mon = HealthMonitor(HealthConfig(), 1.0)
    ch = fake_channel(clock)
    feed(ch, clock, 3)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.HEALTHY
    before = ch.broadcaster.total_bytes
    feed(ch, clock, 4, frozen=True)
    assert ch.broadcaster.total_bytes > before  # bytes keep flowing...
    status, reasons, lag = mon.evaluate(ch, clock.monotonic())
    assert status is HealthStatus.UNHEALTHY  # ...but the picture does not advance
    # the output fell behind the clock until the pacer gave up catching up and re-anchored
    assert ch.pacer.reanchors >= 1 and lag > 1.0
    assert any("timeline gap" in r for r in reasons)


def test_speed_progress_and_breaker_rules():
    clock = FakeClock()
    mon = HealthMonitor(HealthConfig(), 1.0)
    ch = fake_channel(clock)
    feed(ch, clock, 2)
    ch.progress = ProgressSample(fps=27, speed=0.9)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.DEGRADED
    ch.progress = ProgressSample(fps=20, speed=0.7)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.UNHEALTHY
    ch.progress = ProgressSample(fps=30, speed=1.0)
    clock.advance(6)  # no progress line for 6 s (the pacer still has a little to send)
    status, reasons, _ = mon.evaluate(ch, clock.monotonic())
    assert status is HealthStatus.UNHEALTHY and "no FFmpeg progress" in reasons[0]
    for _ in range(5):
        ch.breaker.record_failure("x")
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.FAILED
    ch.running = False
    ch.breaker = CircuitBreaker(1, CircuitBreakerConfig(), clock)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.IDLE


def test_dropped_frames_rising_is_degraded_and_history_is_recorded():
    clock = FakeClock()
    mon = HealthMonitor(HealthConfig(), 1.0)
    ch = fake_channel(clock)
    feed(ch, clock, 2)
    assert mon.sample(ch, clock.monotonic(), clock.time()) is HealthStatus.HEALTHY
    ch.progress = ProgressSample(fps=30, speed=1.0, drop_frames=12)
    feed(ch, clock, 1)
    assert mon.sample(ch, clock.monotonic(), clock.time()) is HealthStatus.DEGRADED
    assert mon.streaks(1) == (0, 1)
    rep = mon.report(ch, 2, {"state": "CLOSED"}, clock.monotonic())
    assert [h["status"] for h in rep["history"]] == ["healthy", "degraded"] and rep["sessions_active"] == 2


def test_store_retention_keeps_the_newest(tmp_path):
    s = Store(tmp_path / "db", max_events=100, commit_interval=0.01)
    for i in range(1, 301):
        s.add_event({"id": i, "timestamp": float(i), "kind": "k", "channel_id": None, "message": "m", "data": {}})
    s.close()
    s2 = Store(tmp_path / "db")
    ids = [e["id"] for e in s2.recent_events(1000)]
    s2.close()
    assert ids == list(range(201, 301))
