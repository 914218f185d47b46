"""Fake-clock unit tests: circuit breaker, token bucket, restart guard, process pool guards."""

import asyncio
import sys

import pytest

from exstreamtv.engine.guards.circuit_breaker import BreakerState, CircuitBreaker
from exstreamtv.engine.clock import FakeClock
from exstreamtv.engine.config import CircuitBreakerConfig, ProcessPoolConfig, RestartGuardConfig
from exstreamtv.engine.observe.events import EventLog
from exstreamtv.engine.guards.process_pool import ProcessPoolManager, RejectReason, SpawnRejected
from exstreamtv.engine.guards.restart_guard import RefusalReason, RestartGuard
from exstreamtv.engine.guards.token_bucket import TokenBucket

# ---------------------------------------------------------------- circuit breaker


def breaker(clock, **kw):
    transitions = []
    b = CircuitBreaker(1, CircuitBreakerConfig(**{"failure_threshold": 5, "window_seconds": 300,
                                                  "open_seconds": 120, **kw}), clock,
                       lambda br, old, new, why: transitions.append((old, new, clock.monotonic())))
    return b, transitions


def test_breaker_opens_on_fifth_failure_in_window():
    clock = FakeClock()
    b, tr = breaker(clock)
    for _ in range(4):
        b.record_failure("x")
        clock.advance(10)
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure("x")
    assert b.state is BreakerState.OPEN
    assert not b.allow() and not b.would_allow()
    assert tr == [(BreakerState.CLOSED, BreakerState.OPEN, clock.monotonic())]
    assert b.retry_after() == pytest.approx(120)


def test_breaker_window_slides():
    clock = FakeClock()
    b, _ = breaker(clock)
    for _ in range(4):
        b.record_failure("x")
    clock.advance(300.001)  # the first four fall out of the window
    b.record_failure("x")
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().failures_in_window == 1
    for _ in range(4):
        clock.advance(1)
        b.record_failure("x")
    assert b.state is BreakerState.OPEN


def test_half_open_allows_exactly_one_trial_and_success_closes():
    clock = FakeClock()
    b, tr = breaker(clock)
    for _ in range(5):
        b.record_failure("x")
    clock.advance(119.999)
    assert b.state is BreakerState.OPEN
    clock.advance(0.001)
    assert b.state is BreakerState.HALF_OPEN
    assert b.would_allow()
    assert b.allow() is True
    assert b.allow() is False  # the one trial is taken
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().failures_in_window == 0
    assert [t[1] for t in tr] == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_half_open_failure_reopens_for_another_period():
    clock = FakeClock()
    b, tr = breaker(clock)
    for _ in range(5):
        b.record_failure("x")
    clock.advance(120)
    assert b.allow()
    b.record_failure("trial")
    assert b.state is BreakerState.OPEN
    assert b.retry_after() == pytest.approx(120)
    clock.advance(60)
    b.record_failure("late report")  # does not extend an open breaker
    assert b.retry_after() == pytest.approx(60)
    clock.advance(60)
    assert b.state is BreakerState.HALF_OPEN


# ---------------------------------------------------------------- token bucket


def test_token_bucket_burst_then_rate():
    clock = FakeClock()
    tb = TokenBucket(clock, rate=5, capacity=5)
    assert all(tb.try_take() for _ in range(5))
    assert not tb.try_take()
    assert tb.wait_time() == pytest.approx(0.2)
    clock.advance(0.2)
    assert tb.try_take() and not tb.try_take()
    clock.advance(10)
    assert tb.tokens == pytest.approx(5)  # never above the burst size
    taken = 0
    for _ in range(100):  # 10 s at 5/s on top of a full bucket of 5: 55 at most
        clock.advance(0.1)
        while tb.try_take():
            taken += 1
    assert 54 <= taken <= 55


# ---------------------------------------------------------------- restart guard


def test_restart_guard_order_and_retry_after():
    clock = FakeClock()
    g = RestartGuard(RestartGuardConfig(max_restarts=10, window_seconds=60, channel_cooldown_seconds=30), clock)
    b, _ = breaker(clock)
    assert g.check(1, b).accepted
    clock.advance(10)
    d = g.check(1, b)
    assert (d.accepted, d.reason) == (False, RefusalReason.CHANNEL_COOLDOWN)
    assert d.retry_after_seconds == pytest.approx(20)
    for ch in range(2, 11):
        assert g.check(ch, None).accepted
    d = g.check(11, None)
    assert (d.accepted, d.reason) == (False, RefusalReason.GLOBAL_THROTTLE)
    assert d.retry_after_seconds == pytest.approx(50)  # the first restart leaves the window at t=60
    # global throttle is checked before the cooldown
    d = g.check(1, b)
    assert d.reason is RefusalReason.GLOBAL_THROTTLE
    clock.advance(50)
    for _ in range(5):
        b.record_failure("x")
    d = g.check(1, b)
    assert (d.accepted, d.reason) == (False, RefusalReason.CIRCUIT_OPEN)
    assert d.retry_after_seconds == pytest.approx(120)
    assert d.to_dict() == {"accepted": False, "reason": "circuit_open", "retry_after_seconds": 120.0}


def test_storm_of_restarts_accepts_at_most_ten():
    clock = FakeClock()
    g = RestartGuard(RestartGuardConfig(max_restarts=10, window_seconds=60, channel_cooldown_seconds=0), clock)
    decisions = []
    for i in range(100):
        decisions.append(g.check(i % 3, None))
        clock.advance(0.01)
    assert sum(d.accepted for d in decisions) == 10
    assert {d.reason for d in decisions if not d.accepted} == {RefusalReason.GLOBAL_THROTTLE}


# ---------------------------------------------------------------- process pool


class FakeReadings:
    def __init__(self, mem=40.0, avail=8 * 2**30, fd_limit=1024, fd_used=50):
        self.mem, self.avail, self.limit, self.used = mem, avail, fd_limit, fd_used

    def memory_percent(self):
        return self.mem

    def memory_available_bytes(self):
        return self.avail

    def fd_limit(self):
        return self.limit

    def fd_used(self):
        return self.used

    def process_stats(self, pid):
        return (1234, 1.5)


def pool(clock, readings, **kw):
    cfg = ProcessPoolConfig(**{"max_processes": 4, "memory_per_process_mb": 200, "fd_reserve": 100,
                               "fds_per_process": 12, "spawn_wait_seconds": 0.0, **kw})
    breakers = {1: CircuitBreaker(1, CircuitBreakerConfig(), clock)}
    return ProcessPoolManager(cfg, clock, EventLog(clock), readings, breaker_for=breakers.get), breakers


def test_capacity_is_the_smallest_of_three():
    clock = FakeClock()
    r = FakeReadings()
    p, _ = pool(clock, r)
    c = p.capacity()
    assert (c.cap, c.reason) == (4, "configured")
    r.avail = 600 * 2**20  # room for 3 more processes of 200 MB
    c = p.capacity()
    assert (c.cap, c.reason, c.memory_cap) == (3, "memory", 3)
    r.avail = 8 * 2**30
    r.limit = 136  # (136 - 100) / 12 = 3
    c = p.capacity()
    assert (c.cap, c.reason, c.fd_cap) == (3, "file_descriptors", 3)


async def test_guards_reject_with_reason_count_event_and_breaker_failure():
    clock = FakeClock()
    r = FakeReadings(mem=85.0)
    p, breakers = pool(clock, r)
    with pytest.raises(SpawnRejected) as err:
        await p.spawn(["true"], channel_id=1, role="program")
    assert err.value.reason is RejectReason.MEMORY
    r.mem = 84.9
    r.used = 1024 - 99
    with pytest.raises(SpawnRejected) as err:
        await p.spawn(["true"], channel_id=1, role="program")
    assert err.value.reason is RejectReason.FD_RESERVE
    assert p.rejected_spawns == 2
    assert p.rejections_by_reason == {"memory": 1, "fd_reserve": 1}
    assert p.events.count("spawn_rejected") == 2
    assert breakers[1].snapshot().failures_in_window == 2


async def test_rate_limit_and_capacity_and_open_breaker():
    clock = FakeClock()
    p, breakers = pool(clock, FakeReadings(), max_processes=10, spawns_per_second=5, spawn_burst=5)
    procs = [await p.spawn([sys.executable, "-c", "import time; time.sleep(30)"], channel_id=None, role="t")
             for _ in range(5)]
    try:
        with pytest.raises(SpawnRejected) as err:  # the burst is used up and the clock does not move
            await p.spawn(["true"], channel_id=None, role="t")
        assert err.value.reason is RejectReason.RATE_LIMIT
        clock.advance(1.0)
        p.cfg.max_processes = 5
        with pytest.raises(SpawnRejected) as err:
            await p.spawn(["true"], channel_id=None, role="t")
        assert err.value.reason is RejectReason.CAPACITY
        for _ in range(5):
            breakers[1].record_failure("x")
        with pytest.raises(SpawnRejected) as err:
            await p.spawn(["true"], channel_id=1, role="program")
        assert err.value.reason is RejectReason.CIRCUIT_OPEN
        snap = p.snapshot()
        assert snap["running"] == 5 and snap["capacity"] == 5 and snap["capacity_reason"] == "configured"
        assert {x["pid"] for x in snap["processes"]} == {m.pid for m in procs}
    finally:
        await p.shutdown()
    assert all(m.returncode is not None for m in procs)


async def test_zombie_orphan_stall_and_long_run_checks():
    clock = FakeClock()
    p, _ = pool(clock, FakeReadings(), max_processes=10, stall_timeout_seconds=30, max_runtime_hours=1)
    alive = {"a": True, "b": True}
    orphan = await p.spawn([sys.executable, "-c", "import time; time.sleep(30)"], channel_id=None, role="t",
                           owner_alive=lambda: alive["a"])
    stalled = await p.spawn([sys.executable, "-c", "import time; time.sleep(30)"], channel_id=None, role="t")
    done = await p.spawn(["true"], channel_id=None, role="t", owner_alive=lambda: alive["b"])
    long_runner = await p.spawn([sys.executable, "-c", "import time; time.sleep(30)"], channel_id=2, role="t")
    released = []
    p.on_long_run = released.append
    try:
        await done.proc.wait()
        alive["a"] = alive["b"] = False
        clock.advance(31)
        for m in (long_runner,):
            m.touch(clock.monotonic())
        long_runner.started_mono -= 3601
        result = p.check()
        assert result["orphans_killed"] == 1 and result["stalled_killed"] == 1 and result["long_run"] == 1
        assert result["reaped"] >= 1
        assert released == [long_runner]
        await asyncio.wait_for(orphan.proc.wait(), 5)
        await asyncio.wait_for(stalled.proc.wait(), 5)
        assert orphan.killed_by_us and stalled.kill_reason == "stalled"
        assert p.zombies_reaped >= 2
    finally:
        await p.shutdown()
