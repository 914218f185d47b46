"""Fake-clock tests of the SessionManager state machine and the StreamThrottler modes."""

import pytest

from exstreamtv.engine.clock import FakeClock
from exstreamtv.engine.config import SessionManagerConfig, StreamThrottlerConfig
from exstreamtv.engine.observe.events import EventLog
from exstreamtv.engine.sessions import (ALLOWED, InvalidTransition, SessionLimitReached, SessionManager,
                                        SessionState)
from exstreamtv.engine.stream.throttle import StreamThrottler

S = SessionState


def manager(clock, **kw):
    cfg = SessionManagerConfig(**{"max_sessions_per_channel": 3, "idle_timeout_seconds": 300,
                                  "idle_after_seconds": 10, "max_errors": 3, "history_size": 2, **kw})
    return SessionManager(cfg, clock, EventLog(clock))


def test_happy_path_transitions_and_counters():
    clock = FakeClock()
    m = manager(clock)
    s = m.create(1, "10.0.0.1:5000", "VLC/3.0")
    assert s.state is S.CREATED
    m.sending(s)
    m.sent(s, 1000)
    assert s.state is S.ACTIVE and s.bytes_sent == 1000
    m.sending(s)
    clock.advance(10)
    m.check_idle()
    assert s.state is S.IDLE
    m.sent(s, 500)  # the client reads again
    assert s.state is S.ACTIVE and s.bytes_sent == 1500
    m.send_failed(s, "reset")
    assert s.state is S.ERROR and s.errors == 1
    m.sent(s, 10)
    assert s.state is S.ACTIVE
    assert m.disconnect(s, "client left")
    assert s.state is S.DISCONNECTED and s.disconnect_reason == "client left"
    assert not m.disconnect(s, "again")


def test_error_then_disconnect_and_max_errors():
    clock = FakeClock()
    m = manager(clock)
    s = m.create(1, "a", "")
    m.sent(s, 1)
    m.send_failed(s, "e1")
    m.send_failed(s, "e2")  # a second error while in ERROR: gone
    assert s.state is S.DISCONNECTED and "e2" in s.disconnect_reason
    t = m.create(1, "b", "")
    for i in range(3):  # errors separated by recoveries still count up to max_errors
        m.sent(t, 1)
        m.send_failed(t, f"e{i}")
    assert t.state is S.DISCONNECTED


def test_invalid_transitions_are_impossible():
    clock = FakeClock()
    m = manager(clock)
    s = m.create(1, "a", "")
    with pytest.raises(InvalidTransition):
        m._move(s, S.IDLE)  # Created -> Idle is not a transition of the guide
    with pytest.raises(InvalidTransition):
        m._move(s, S.ERROR)
    m.disconnect(s, "x")
    for target in S:
        with pytest.raises(InvalidTransition):
            m._move(s, target)
    assert ALLOWED[S.IDLE] == {S.ACTIVE, S.DISCONNECTED}
    with pytest.raises(AttributeError):
        s.state = S.ACTIVE  # read-only


def test_limit_per_channel_and_slot_freed_on_disconnect():
    clock = FakeClock()
    m = manager(clock)
    a = [m.create(1, f"c{i}", "") for i in range(3)]
    with pytest.raises(SessionLimitReached, match="Max sessions reached"):
        m.create(1, "c4", "")
    m.create(2, "other", "")  # other channels are not affected
    m.disconnect(a[0], "left")
    m.create(1, "c5", "")  # a disconnected session no longer holds a slot
    assert m.total_refused == 1


def test_idle_timeout_and_cleanup_with_bounded_history():
    clock = FakeClock()
    m = manager(clock, idle_timeout_seconds=60)
    s = m.create(1, "a", "")
    m.sent(s, 100)
    m.sending(s)
    clock.advance(10)
    m.check_idle()
    assert s.state is S.IDLE
    clock.advance(49)
    m.check_idle()
    assert s.state is S.IDLE
    clock.advance(11)  # idle since t=0 of the send: 70 s > 60 s
    m.check_idle()
    assert s.state is S.DISCONNECTED and s.disconnect_reason == "idle for 60s"
    others = [m.create(1, f"x{i}", "") for i in range(2)]
    for o in others:
        clock.advance(1)
        m.disconnect(o, "bye")
    assert m.cleanup() == 3
    assert m.get(s.session_id) is None
    assert len(m.history) == 2  # history_size
    assert m.summary()["total_sessions"] == 0
    assert [d["client_addr"] for d in m.recent_disconnects()] == ["x1", "x0"]


def test_summary_has_the_guides_fields():
    clock = FakeClock()
    m = manager(clock)
    a = m.create(1, "a", "ua")
    b = m.create(2, "b", "ub")
    m.sent(a, 1000)
    clock.advance(4)
    m.sent(b, 500)
    out = m.summary()
    assert set(out) == {"total_sessions", "sessions_by_channel", "average_duration_seconds", "total_bytes_sent",
                        "sessions"}
    assert out["total_sessions"] == 2 and out["sessions_by_channel"] == {"1": 1, "2": 1}
    assert out["average_duration_seconds"] == 4.0 and out["total_bytes_sent"] == 1500
    keys = set(out["sessions"][0])
    assert {"session_id", "channel_id", "client_addr", "user_agent", "state", "created_at", "duration_seconds",
            "bytes_sent", "current_rate_bps", "errors"} <= keys
    assert m.summary(2)["total_sessions"] == 1


# ---------------------------------------------------------------- throttler

def drive(th: StreamThrottler, clock: FakeClock, seconds: float, chunk: int = 40_000, source_Bps: float | None = None):
    """A viewer loop against a source that always has data (or produces at ``source_Bps``): send, pay the debt."""
    sent = []
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        delay = th.reserve(chunk)
        sent.append((clock.monotonic(), chunk))
        step = max(delay, chunk / source_Bps if source_Bps else 0.0, 0.001)
        clock.advance(step)
    return sent


def window_rates(sent, start, end, width=10.0):
    out = []
    t = start
    while t + width <= end:
        out.append(sum(n for at, n in sent if t <= at < t + width) * 8 / width)
        t += 1.0
    return out


def cfg(mode, **kw):
    return StreamThrottlerConfig(**{"mode": mode, "target_bitrate_bps": 4_000_000, **kw})


def test_realtime_rate_within_two_percent_over_any_10s_window():
    clock = FakeClock()
    th = StreamThrottler(cfg("realtime"), clock)
    t0 = clock.monotonic()
    sent = drive(th, clock, 60)
    rates = window_rates(sent, t0 + 1, t0 + 60)
    assert rates and all(abs(r - 4_000_000) / 4_000_000 <= 0.02 for r in rates), (min(rates), max(rates))


def test_burst_allows_double_rate_until_allowance_is_spent():
    clock = FakeClock()
    th = StreamThrottler(cfg("burst", burst_seconds=10), clock)
    t0 = clock.monotonic()
    sent = drive(th, clock, 40)
    first = sum(n for at, n in sent if t0 + 1 <= at < t0 + 6) * 8 / 5  # after the bucket's own 0.5 s
    late = sum(n for at, n in sent if t0 + 25 <= at < t0 + 35) * 8 / 10
    assert first == pytest.approx(8_000_000, rel=0.05)
    assert late == pytest.approx(4_000_000, rel=0.02)
    # the extra bytes sent above target are the allowance: 10 s of target
    extra = sum(n for at, n in sent if at < t0 + 20) * 8 - 4_000_000 * 20
    assert extra == pytest.approx(4_000_000 * 10, rel=0.1)


def test_disabled_mode_never_waits():
    clock = FakeClock()
    th = StreamThrottler(cfg("disabled"), clock)
    assert all(th.reserve(10_000_000) == 0 for _ in range(10))
    th2 = StreamThrottler(StreamThrottlerConfig(enabled=False, mode="realtime"), clock)
    assert th2.reserve(10_000_000) == 0


def test_adaptive_goes_up_while_client_keeps_up_and_down_when_it_backs_up():
    clock = FakeClock()
    th = StreamThrottler(cfg("adaptive", adaptive_ceiling_factor=2.0), clock)
    for _ in range(60):  # a fast client: sends never block
        clock.advance(0.25)
        th.reserve(1000)
        th.observe_send(0.0)
    assert th.rate_bps == pytest.approx(8_000_000)  # reached the ceiling
    for _ in range(30):  # its socket backs up: most of each second blocked
        clock.advance(0.25)
        th.reserve(1000)
        th.observe_send(0.2)
    assert th.rate_bps == pytest.approx(2_000_000)  # down to the floor (half the target)
    mid = th.rate_bps
    clock.advance(1.0)
    th.observe_send(0.3)  # 30%: neither rule fires
    th.reserve(1000)
    assert th.rate_bps == mid
