"""Health rules on a fake clock: byte flow with frozen timestamps is not health."""

from collections import deque
from types import MethodType, SimpleNamespace

from exstreamtv.engine.stream.broadcaster import Broadcaster
from exstreamtv.engine.pipeline.channel import Channel, ChannelState
from exstreamtv.engine.guards.circuit_breaker import CircuitBreaker
from exstreamtv.engine.clock import FakeClock
from exstreamtv.engine.config import CircuitBreakerConfig, HealthConfig, StreamingConfig
from exstreamtv.engine.guards.health import HealthMonitor, HealthStatus
from exstreamtv.engine.stream.mpegts import CLOCK, OutPacket
from exstreamtv.engine.stream.pacer import Pacer
from exstreamtv.engine.ffmpeg.progress import ProgressSample
from exstreamtv.engine.state.store import Store


def fake_channel(clock):
    """A stand-in with the channel's real health readings (windowed speed, buffer left)."""
    b = Broadcaster()
    pacer = Pacer(clock, b, lead=1.0)
    ch = SimpleNamespace(number=1, breaker=CircuitBreaker(1, CircuitBreakerConfig(), clock), running=True,
                         state=ChannelState.PLAYING, last_error="", slate_active=False, pacer=pacer,
                         progress=ProgressSample(fps=30, speed=1.0), progress_at=clock.monotonic(),
                         streaming=StreamingConfig(readahead_seconds=3.0), broadcaster=b, restarts=0,
                         started_at=clock.monotonic(), segment_started_at=clock.monotonic() - 60,
                         media_problems={}, speed_window=deque(maxlen=120), skipped_airings=0, short_airings=0)
    ch.windowed_speed = MethodType(Channel.windowed_speed, ch)
    ch.buffer_left = MethodType(Channel.buffer_left, ch)
    return ch


def progress(ch, clock, speed: float, seconds: float) -> None:
    """FFmpeg at ``speed``: media reaches the pacer at that rate, progress lines every 0.5 s."""
    out = ch.speed_window[-1][1] if ch.speed_window else 0.0
    for _ in range(int(seconds * 2)):
        last = ch.pacer.pending[-1].time / CLOCK if ch.pacer.pending else ch.pacer.released_time / CLOCK
        for k in range(1, 16):
            ch.pacer.push([packet(last + k * speed / 30)])
        for _ in range(5):
            clock.advance(0.1)
            ch.pacer.release_due()
        out += 0.5 * speed
        ch.speed_window.append((clock.monotonic(), out))
        ch.progress_at = clock.monotonic()


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
    progress(ch, clock, 0.9, 6)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.DEGRADED
    progress(ch, clock, 0.7, 6)  # slow, and the buffer is nearly empty: viewers will miss media
    assert ch.buffer_left() < 1.5
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.UNHEALTHY
    progress(ch, clock, 1.0, 6)
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


def test_blocked_by_backpressure_is_not_a_stall_and_buffer_counts():
    """An audio-only programme: FFmpeg blocked on the full pipe prints no progress; the channel
    holds seconds of media, so it is healthy (it used to be killed mid-song)."""
    clock = FakeClock()
    mon = HealthMonitor(HealthConfig(), 1.0)
    ch = fake_channel(clock)
    t0 = 10.0
    ch.pacer.push([packet(t0 + k / 30, k % 30 == 0) for k in range(30 * 9)])  # 9 s encoded at once
    ch.pacer.release_due()
    ch.progress_at = clock.monotonic()
    for _ in range(60):  # 6 s without a progress line while the pacer feeds viewers
        clock.advance(0.1)
        ch.pacer.release_due()
    assert ch.buffer_left() > 2
    status, reasons, _ = mon.evaluate(ch, clock.monotonic())
    assert status is HealthStatus.HEALTHY, reasons
    for _ in range(25):  # ... until the buffer runs out: now viewers miss media
        clock.advance(0.1)
        ch.pacer.release_due()
    assert ch.buffer_left() < 1.5
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.UNHEALTHY


def test_a_new_process_and_a_short_spike_are_judged_on_a_window():
    clock = FakeClock()
    mon = HealthMonitor(HealthConfig(), 1.0)
    ch = fake_channel(clock)
    feed(ch, clock, 1)
    t = ch.pacer.released_time / CLOCK
    ch.pacer.push([packet(t + k / 30) for k in range(1, 30 * 6)])  # the readahead the channel holds
    ch.segment_started_at = clock.monotonic()  # a replacement process: FFmpeg's own speed is 0.3x here
    ch.progress = ProgressSample(fps=9, speed=0.3)
    progress(ch, clock, 0.3, 4)
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.HEALTHY  # inside the start-up grace
    progress(ch, clock, 1.0, 10)  # after the grace the window says 1.0x (FFmpeg's cumulative figure lags)
    assert abs(ch.windowed_speed(5) - 1.0) < 1e-6
    assert mon.evaluate(ch, clock.monotonic())[0] is HealthStatus.HEALTHY
    # a spike with buffer in hand: the viewers miss nothing, so no healing into the error screen
    t = ch.pacer.pending[-1].time / CLOCK
    ch.pacer.push([packet(t + k / 30) for k in range(1, 30 * 8)])
    progress(ch, clock, 0.5, 6)
    assert ch.buffer_left() >= 1.5
    status, reasons, _ = mon.evaluate(ch, clock.monotonic())
    assert status is HealthStatus.HEALTHY, reasons
    progress(ch, clock, 0.5, 20)  # the spike outlasts the buffer: now it is a failure
    assert ch.buffer_left() < 1.5
    status, reasons, _ = mon.evaluate(ch, clock.monotonic())
    assert status is HealthStatus.UNHEALTHY and any("speed 0.50x" in r for r in reasons), reasons
