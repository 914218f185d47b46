"""ProcessPoolManager: the only way the product starts an FFmpeg process.

Why one gate: orphaned and runaway FFmpeg processes are the most common failure of
channel servers. Every spawn here passes a global cap (configured, memory-derived and
FD-derived, the smallest wins), a token bucket (5 spawns/s), a memory guard (85%) and
an FD-reserve guard, and the channel's circuit breaker. Every child gets its own
process group and PR_SET_PDEATHSIG(SIGKILL), so it dies with the server even after
``kill -9``. A periodic check reaps zombies, kills processes whose owner is gone or that
stalled, and releases processes that ran too long.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import Any, Callable

from ..clock import Clock
from ..config import ProcessPoolConfig
from ..observe.events import EventLog
from .spawning import Spawner, _own_group, default_spawner
from .system_readings import PsutilReadings, SystemReadings
from .token_bucket import TokenBucket

log = logging.getLogger("exstreamtv.pool")


class RejectReason(str, enum.Enum):
    CIRCUIT_OPEN = "circuit_open"
    CAPACITY = "capacity"
    MEMORY = "memory"
    FD_RESERVE = "fd_reserve"
    RATE_LIMIT = "rate_limit"
    SPAWN_ERROR = "spawn_error"
    SHUTTING_DOWN = "shutting_down"


class SpawnRejected(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"spawn rejected ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(eq=False)
class ManagedProcess:
    proc: asyncio.subprocess.Process
    channel_id: int | None
    role: str
    argv: list[str]
    started_at: float  # wall
    started_mono: float
    last_activity: float  # monotonic; owners call touch() on output/progress
    owner_alive: Callable[[], bool] = lambda: True
    killed_by_us: bool = False
    kill_reason: str | None = None
    kill_is_failure: bool = False  # a stall or an unhealthy pipeline counts on the breaker
    long_run_notified: bool = False
    released: bool = field(default=False)
    background: bool = False  # probe, logo, demo clip: its own slots and token bucket

    @property
    def pid(self) -> int:
        return self.proc.pid

    def touch(self, now: float) -> None:
        self.last_activity = now

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode


@dataclass(frozen=True)
class Capacity:
    cap: int
    reason: str  # "configured", "memory", "file_descriptors"
    configured: int
    memory_cap: int
    fd_cap: int


class ProcessPoolManager:
    def __init__(self, cfg: ProcessPoolConfig, clock: Clock, events: EventLog,
                 readings: SystemReadings | None = None, spawner: Spawner | None = None,
                 breaker_for: Callable[[int], Any] | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.events = events
        self.readings = readings if readings is not None else PsutilReadings()
        self.spawner = spawner or default_spawner
        self.breaker_for = breaker_for
        self.bucket = TokenBucket(clock, cfg.spawns_per_second, cfg.spawn_burst)
        # background work (probes, logos, demo clips) has its own budget: it never takes a
        # channel's spawn token, never waits in the channels' queue, and leaves room under the cap
        self.bg_bucket = TokenBucket(clock, cfg.background_spawns_per_second, max(1, cfg.background_max_processes))
        self._bg_slots = asyncio.Semaphore(cfg.background_max_processes)
        self.background_running = 0
        self._procs: dict[int, ManagedProcess] = {}
        self.rejected_spawns = 0
        self.rejections_by_reason: dict[str, int] = {}
        self.zombies_reaped = 0
        self.spawned_total = 0
        self.on_long_run: Callable[[ManagedProcess], None] | None = None
        self._closing = False
        self._lock = asyncio.Lock()
        self._checker: asyncio.Task | None = None

    # -- capacity
    def capacity(self) -> Capacity:
        per_proc = self.cfg.memory_per_process_mb * 1024 * 1024
        mem_cap = max(0, int(self.readings.memory_available_bytes() // per_proc)) + self.running
        fd_cap = max(0, (self.readings.fd_limit() - self.cfg.fd_reserve) // self.cfg.fds_per_process)
        options = [(self.cfg.max_processes, "configured"), (mem_cap, "memory"), (fd_cap, "file_descriptors")]
        cap, reason = min(options, key=lambda o: o[0])
        return Capacity(cap, reason, self.cfg.max_processes, mem_cap, fd_cap)

    @property
    def running(self) -> int:
        return sum(1 for p in self._procs.values() if p.returncode is None)

    def processes(self, channel_id: int | None = None, role: str | None = None) -> list[ManagedProcess]:
        return [p for p in self._procs.values()
                if (channel_id is None or p.channel_id == channel_id) and (role is None or p.role == role)]

    # -- spawning
    def _reject(self, reason: RejectReason, detail: str, channel_id: int | None, role: str) -> SpawnRejected:
        self.rejected_spawns += 1
        self.rejections_by_reason[reason.value] = self.rejections_by_reason.get(reason.value, 0) + 1
        self.events.emit("spawn_rejected", f"spawn of {role} rejected: {reason.value} ({detail})", channel_id,
                         level=logging.WARNING, reason=reason.value, role=role)
        if channel_id is not None and self.breaker_for and reason is not RejectReason.CIRCUIT_OPEN \
                and reason is not RejectReason.SHUTTING_DOWN:
            breaker = self.breaker_for(channel_id)
            if breaker is not None:
                breaker.record_failure(f"spawn rejected: {reason.value}")
        return SpawnRejected(reason, detail)

    async def spawn(self, argv: list[str], *, channel_id: int | None, role: str,
                    owner_alive: Callable[[], bool] | None = None, check_breaker: bool = True,
                    background: bool = False, **spawn_kwargs: Any) -> ManagedProcess:
        """Start ``argv`` if every guard allows it, else raise ``SpawnRejected``."""
        if self._closing:
            raise self._reject(RejectReason.SHUTTING_DOWN, "the server is stopping", channel_id, role)
        if background:
            return await self._spawn_background(argv, role, spawn_kwargs)
        if check_breaker and channel_id is not None and self.breaker_for:
            breaker = self.breaker_for(channel_id)
            if breaker is not None and not breaker.allow():
                raise self._reject(RejectReason.CIRCUIT_OPEN,
                                   f"circuit breaker open, retry in {breaker.retry_after():.0f}s", channel_id, role)
        async with self._lock:
            cap = self.capacity()
            if self.running >= cap.cap:
                raise self._reject(RejectReason.CAPACITY, f"{self.running} running, cap {cap.cap} ({cap.reason})",
                                   channel_id, role)
            mem = self.readings.memory_percent()
            if mem >= self.cfg.memory_limit_percent:
                raise self._reject(RejectReason.MEMORY,
                                   f"system memory at {mem:.1f}% (limit {self.cfg.memory_limit_percent:g}%)",
                                   channel_id, role)
            free_fds = self.readings.fd_limit() - self.readings.fd_used()
            if free_fds < self.cfg.fd_reserve:
                raise self._reject(RejectReason.FD_RESERVE,
                                   f"{free_fds} free file descriptors (reserve {self.cfg.fd_reserve})",
                                   channel_id, role)
            wait = self.bucket.wait_time()
            if wait > self.cfg.spawn_wait_seconds:
                raise self._reject(RejectReason.RATE_LIMIT,
                                   f"next spawn token in {wait:.2f}s (limit {self.cfg.spawns_per_second:g}/s)",
                                   channel_id, role)
            while not self.bucket.try_take():
                await asyncio.sleep(max(0.001, self.bucket.wait_time()))
                if self._closing:
                    raise self._reject(RejectReason.SHUTTING_DOWN, "the server is stopping", channel_id, role)
            try:
                proc = await self.spawner(argv, **spawn_kwargs)
            except OSError as exc:
                raise self._reject(RejectReason.SPAWN_ERROR, str(exc), channel_id, role) from None
            now = self.clock.monotonic()
            mp = ManagedProcess(proc, channel_id, role, list(argv), self.clock.time(), now, now,
                                owner_alive or (lambda: True))
            self._procs[proc.pid] = mp
            self.spawned_total += 1
            log.debug("spawned %s pid %s for channel %s", role, proc.pid, channel_id)
            return mp

    async def _spawn_background(self, argv: list[str], role: str, spawn_kwargs: dict[str, Any]) -> ManagedProcess:
        """A short background job: waits its turn (slots, its own token bucket, room under the cap
        with two places kept for channels) instead of being refused; memory and FD guards apply."""
        await self._bg_slots.acquire()
        try:
            while True:
                if self._closing:
                    raise self._reject(RejectReason.SHUTTING_DOWN, "the server is stopping", None, role)
                if self.running + 2 <= self.capacity().cap and self.bg_bucket.try_take():
                    break
                await asyncio.sleep(max(0.02, min(0.5, self.bg_bucket.wait_time())))
            mem = self.readings.memory_percent()
            if mem >= self.cfg.memory_limit_percent:
                raise self._reject(RejectReason.MEMORY, f"system memory at {mem:.1f}% (limit "
                                   f"{self.cfg.memory_limit_percent:g}%)", None, role)
            free_fds = self.readings.fd_limit() - self.readings.fd_used()
            if free_fds < self.cfg.fd_reserve:
                raise self._reject(RejectReason.FD_RESERVE, f"{free_fds} free file descriptors (reserve "
                                   f"{self.cfg.fd_reserve})", None, role)
            try:
                proc = await self.spawner(argv, **spawn_kwargs)
            except OSError as exc:
                raise self._reject(RejectReason.SPAWN_ERROR, str(exc), None, role) from None
        except BaseException:
            self._bg_slots.release()
            raise
        now = self.clock.monotonic()
        mp = ManagedProcess(proc, None, role, list(argv), self.clock.time(), now, now, lambda: True)
        mp.background = True
        self._procs[proc.pid] = mp
        self.background_running += 1
        self.spawned_total += 1
        return mp

    # -- ending
    async def terminate(self, mp: ManagedProcess, reason: str = "stopped", timeout: float | None = None) -> int | None:
        """SIGTERM the process group, SIGKILL after ``kill_timeout_seconds``; returns the exit code."""
        if mp.returncode is None:
            mp.killed_by_us = True
            mp.kill_reason = mp.kill_reason or reason
            self._close_stdout(mp)  # a writer blocked on a full pipe could not act on SIGTERM
            self._signal(mp, signal.SIGTERM)
            try:
                await asyncio.wait_for(mp.proc.wait(), timeout if timeout is not None else self.cfg.kill_timeout_seconds)
            except asyncio.TimeoutError:
                self._signal(mp, signal.SIGKILL)
                try:
                    await asyncio.wait_for(mp.proc.wait(), 5)
                except asyncio.TimeoutError:  # pragma: no cover - a process that survives SIGKILL
                    log.error("pid %s did not die after SIGKILL", mp.pid)
        self.release(mp)
        return mp.returncode

    def kill_now(self, mp: ManagedProcess, reason: str, failure: bool = False) -> None:
        """SIGKILL without waiting (stalls, orphans, restarts); the owner sees the exit."""
        if mp.returncode is None:
            mp.killed_by_us = True
            mp.kill_reason = mp.kill_reason or reason
            mp.kill_is_failure = mp.kill_is_failure or failure
            self._signal(mp, signal.SIGKILL)
            # its output is not wanted; and asyncio's wait() only returns once the pipes are closed
            self._close_stdout(mp)

    def discard_output(self, mp: ManagedProcess) -> None:
        """Stop reading a process's stdout (its remaining output is dropped; wait() can return)."""
        self._close_stdout(mp)

    @staticmethod
    def _close_stdout(mp: ManagedProcess) -> None:
        transport = getattr(mp.proc, "_transport", None)
        pipe = transport.get_pipe_transport(1) if transport is not None else None
        if pipe is not None:
            pipe.close()

    @staticmethod
    def _signal(mp: ManagedProcess, sig: int) -> None:
        try:
            os.killpg(mp.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                mp.proc.send_signal(sig)
            except ProcessLookupError:
                pass

    def release(self, mp: ManagedProcess) -> None:
        """The owner is done with the process (it exited and was awaited)."""
        if mp.background and not mp.released:
            self.background_running -= 1
            self._bg_slots.release()
        mp.released = True
        self._procs.pop(mp.pid, None)
        transport = getattr(mp.proc, "_transport", None)
        if transport is not None and mp.returncode is not None:
            transport.close()  # its pipes, now rather than at garbage collection
        forget = getattr(self.readings, "forget", None)
        if forget:
            forget(mp.pid)

    # -- periodic guard
    def check(self) -> dict[str, int]:
        """Zombie / orphan / stall / long-run check; returns counts of what it did."""
        now = self.clock.monotonic()
        done = {"reaped": 0, "orphans_killed": 0, "stalled_killed": 0, "long_run": 0}
        for mp in list(self._procs.values()):
            if mp.returncode is not None:
                if not mp.owner_alive():  # exited and nobody will await it
                    self.release(mp)
                    self.zombies_reaped += 1
                    done["reaped"] += 1
                continue
            if not mp.owner_alive():
                self.kill_now(mp, "orphan: owner gone")
                self.zombies_reaped += 1
                done["orphans_killed"] += 1
                self.events.emit("zombie_killed", f"{mp.role} pid {mp.pid} had no live owner; killed",
                                 mp.channel_id, level=logging.WARNING, pid=mp.pid)
                continue
            if now - mp.last_activity > self.cfg.stall_timeout_seconds:
                self.kill_now(mp, "stalled", failure=True)
                done["stalled_killed"] += 1
                self.events.emit("process_stalled", f"{mp.role} pid {mp.pid} made no progress for "
                                 f"{now - mp.last_activity:.0f}s; killed", mp.channel_id, level=logging.WARNING,
                                 pid=mp.pid)
                continue
            if now - mp.started_mono > self.cfg.max_runtime_hours * 3600 and not mp.long_run_notified:
                mp.long_run_notified = True
                done["long_run"] += 1
                self.events.emit("long_run_release", f"{mp.role} pid {mp.pid} ran over "
                                 f"{self.cfg.max_runtime_hours:g}h; releasing", mp.channel_id, pid=mp.pid)
                if self.on_long_run:
                    self.on_long_run(mp)
        done["reaped"] += self._reap_strays()
        return done

    def _reap_strays(self) -> int:
        """Children of ours that we do not track (or that are zombies): kill and reap them."""
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return 0
        n = 0
        try:
            children = psutil.Process().children(recursive=False)
        except psutil.Error:
            return 0
        for child in children:
            try:
                if child.pid in self._procs:
                    continue
                status = child.status()
                name = child.name()
            except psutil.Error:
                continue
            if status == psutil.STATUS_ZOMBIE:
                try:
                    os.waitpid(child.pid, os.WNOHANG)
                    n += 1
                except ChildProcessError:
                    pass  # asyncio's child watcher owns it and will reap it
            elif "ffmpeg" in name and not self._closing and _own_group(child.pid):
                # An FFmpeg that our spawner started (own process group) but no pipeline tracks: a leak.
                try:
                    child.kill()
                    n += 1
                    self.events.emit("zombie_killed", f"untracked ffmpeg pid {child.pid} killed", None,
                                     level=logging.WARNING, pid=child.pid)
                except psutil.Error:
                    pass
        self.zombies_reaped += n
        return n

    async def run_checks(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.cfg.zombie_check_interval_seconds)
            try:
                self.check()
            except Exception:
                log.exception("process pool check failed")

    def start(self) -> None:
        if self._checker is None:
            self._checker = asyncio.get_running_loop().create_task(self.run_checks(), name="pool-checks")

    def kill_all_now(self) -> None:
        """Last resort when no event loop is left to stop gracefully: SIGKILL every process group."""
        for mp in list(self._procs.values()):
            if mp.returncode is None:
                mp.killed_by_us = True
                self._signal(mp, signal.SIGKILL)

    async def shutdown(self) -> None:
        """End every process: SIGTERM all, then SIGKILL what is left after the timeout."""
        self._closing = True
        if self._checker:
            self._checker.cancel()
        procs = list(self._procs.values())
        if procs:
            await asyncio.gather(*(self.terminate(mp, "shutdown") for mp in procs), return_exceptions=True)

    # -- snapshot
    def snapshot(self) -> dict[str, Any]:
        cap = self.capacity()
        procs = []
        for mp in self._procs.values():
            if mp.returncode is not None:
                continue
            stats = self.readings.process_stats(mp.pid)
            rss, cpu = stats if stats else (0, 0.0)
            procs.append({"pid": mp.pid, "channel_id": mp.channel_id, "role": mp.role,
                          "started_at": mp.started_at, "rss_bytes": rss, "cpu_percent": cpu})
        return {
            "running": self.running,
            "capacity": cap.cap,
            "capacity_reason": cap.reason,
            "spawn_tokens": round(self.bucket.tokens, 3),
            "background_running": self.background_running,
            "memory_percent": self.readings.memory_percent(),
            "memory_limit_percent": self.cfg.memory_limit_percent,
            "fd_used": self.readings.fd_used(),
            "fd_limit": self.readings.fd_limit(),
            "fd_reserve": self.cfg.fd_reserve,
            "rejected_spawns": self.rejected_spawns,
            "rejections_by_reason": dict(self.rejections_by_reason),
            "zombies_reaped": self.zombies_reaped,
            "spawned_total": self.spawned_total,
            "processes": procs,
        }
