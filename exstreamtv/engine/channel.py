"""One channel at run time: its pipeline, its viewers and its state.

The first viewer starts the channel; later viewers join the running pipeline; the pipeline
stops ``channel_grace_seconds`` after the last viewer leaves. A supervisor task runs one
FFmpeg per program (from the schedule's current offset), splices their outputs into one
timeline, paces it in real time and fans it out. When a process fails, the failure is
recorded on the channel's circuit breaker and the pipeline comes back only through
``request_channel_restart``; while it is refused, an error screen (when enabled) keeps the
viewers' streams alive.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .broadcaster import Broadcaster, Cursor
from .circuit_breaker import CircuitBreaker
from .clock import Clock
from .config import ChannelConfig, FFmpegConfig, StreamingConfig
from .events import EventLog
from .ffmpeg_command import FileSource, OutputProfile, program_command
from .mpegts import CLOCK, Splicer
from .pacer import Pacer
from .process_pool import ManagedProcess, ProcessPoolManager, SpawnRejected
from .progress import ProgressParser, ProgressSample
from .restart_guard import RestartDecision
from .schedule import Schedule, Slot

log = logging.getLogger("exstreamtv.channel")


class ChannelState(str, enum.Enum):
    IDLE = "idle"  # nobody watching, nothing running
    STARTING = "starting"
    PLAYING = "playing"
    ERROR_SCREEN = "error_screen"  # viewers see the error screen (failure or operator slate)
    RECOVERING = "recovering"  # waiting for a restart to be allowed
    STOPPING = "stopping"
    UNAVAILABLE = "unavailable"  # nothing playable in the lineup


class ChannelHost(Protocol):
    clock: Clock
    pool: ProcessPoolManager
    events: EventLog
    ffmpeg_path: str
    profile: OutputProfile

    def request_channel_restart(self, channel_id: int, source: str, reason: str = "") -> RestartDecision: ...

    def error_screen_command(self, channel: "Channel", reason: str, duration: float | None) -> list[str] | None: ...


@dataclass
class SegmentPlan:
    kind: str  # "program" or "error_screen"
    slot: Slot | None
    argv: list[str]
    title: str


@dataclass
class SegmentOutcome:
    ok: bool  # ended by itself with exit code 0
    stopped: bool  # we ended it (restart, swap, stop)
    reason: str
    media_seconds: float
    returncode: int | None


@dataclass
class Viewer:
    channel: "Channel"
    broadcaster: Broadcaster
    cursor: Cursor
    attached: bool = True

    async def read(self, limit: int = 1 << 20) -> bytes:
        return await self.broadcaster.read(self.cursor, limit)

    def available(self, limit: int = 1 << 20) -> bytes:
        return self.broadcaster.available(self.cursor, limit)


@dataclass
class OnAir:
    kind: str
    title: str
    start: float | None
    end: float | None
    since: float


class Channel:
    def __init__(self, cfg: ChannelConfig, host: ChannelHost, breaker: CircuitBreaker,
                 streaming: StreamingConfig, ffcfg: FFmpegConfig, schedule: Schedule | None,
                 unavailable_reason: str | None = None) -> None:
        self.cfg = cfg
        self.number = cfg.number
        self.name = cfg.name
        self.host = host
        self.breaker = breaker
        self.streaming = streaming
        self.ffcfg = ffcfg
        self.schedule = schedule
        self.unavailable_reason = unavailable_reason
        self.state = ChannelState.IDLE if schedule else ChannelState.UNAVAILABLE
        self.viewers = 0
        self.broadcaster: Broadcaster | None = None
        self.splicer: Splicer | None = None
        self.pacer: Pacer | None = None
        self.current: ManagedProcess | None = None
        self.current_plan: SegmentPlan | None = None
        self._air_queue: deque[OnAir] = deque()
        self.recent_plans: deque[SegmentPlan] = deque(maxlen=20)
        self.progress = ProgressSample()
        self.progress_at: float | None = None
        self.progress_history: deque[tuple[float, float, float, float, int]] = deque(maxlen=600)
        self.last_error = ""
        self.stderr_tail = ""
        self.restarts = 0
        self.failures = 0
        self.started_at: float | None = None  # monotonic, pipeline start
        self.segments_started = 0
        self.bytes_out_at_last_check = 0
        self._task: asyncio.Task | None = None
        self._pacer_task: asyncio.Task | None = None
        self._grace: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._restart_requested = False
        self._slate: tuple[float, dict[str, Any]] | None = None  # operator slate: (until monotonic, params)
        self.on_state_change: Callable[["Channel", ChannelState], None] | None = None

    # ------------------------------------------------------------ viewers
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def attach(self) -> Viewer:
        """A viewer joins: start the pipeline if needed and return the viewer's cursor."""
        if self.schedule is None:
            raise RuntimeError(self.unavailable_reason or "channel has nothing to play")
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        if not self.running:
            self.start()
        assert self.broadcaster is not None
        self.viewers += 1
        return Viewer(self, self.broadcaster, self.broadcaster.subscribe())

    def detach(self, viewer: Viewer) -> None:
        if not viewer.attached:
            return
        viewer.attached = False
        viewer.broadcaster.detach(viewer.cursor)
        if viewer.broadcaster is not self.broadcaster:
            return  # a viewer of an earlier run of the pipeline
        self.viewers = max(0, self.viewers - 1)
        if self.viewers == 0 and self.running:
            self._grace = asyncio.get_running_loop().create_task(self._stop_after_grace(),
                                                                 name=f"grace-{self.number}")

    async def _stop_after_grace(self) -> None:
        await asyncio.sleep(self.streaming.channel_grace_seconds)
        if self.viewers == 0:
            self.host.events.emit("channel_stopped", f"channel {self.number} stopped: no viewers for "
                                  f"{self.streaming.channel_grace_seconds:g}s", self.number)
            await self.stop()

    # ------------------------------------------------------------ lifecycle
    def _set_state(self, state: ChannelState) -> None:
        if state is not self.state:
            self.state = state
            if self.on_state_change:
                self.on_state_change(self, state)

    def start(self) -> None:
        self.broadcaster = Broadcaster(max_seconds=self.streaming.viewer_buffer_seconds)
        self.splicer = Splicer()
        self.pacer = Pacer(self.host.clock, self.broadcaster, self.streaming.lead_seconds)
        self.started_at = self.host.clock.monotonic()
        self._restart_requested = False
        self._set_state(ChannelState.STARTING)
        loop = asyncio.get_running_loop()
        self._pacer_task = loop.create_task(self.pacer.run(), name=f"pacer-{self.number}")
        self._task = loop.create_task(self._supervise(), name=f"channel-{self.number}")
        self.host.events.emit("channel_started", f"channel {self.number} pipeline started", self.number)

    async def stop(self) -> None:
        self._set_state(ChannelState.STOPPING)
        task, self._task = self._task, None
        if self._grace is not None and self._grace is not asyncio.current_task():
            self._grace.cancel()
        self._grace = None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._pacer_task is not None:
            self.pacer and self.pacer.close()
            self._pacer_task.cancel()
            self._pacer_task = None
        if self.broadcaster is not None:
            self.broadcaster.close()
        self.viewers = 0
        self._air_queue.clear()
        self._set_state(ChannelState.IDLE if self.schedule else ChannelState.UNAVAILABLE)

    def owner_alive(self) -> bool:
        return self.running

    def restart(self) -> None:
        """Called by the engine once ``request_channel_restart`` accepted: end the current process."""
        self.restarts += 1
        self._restart_requested = True
        self._wake.set()
        if self.current is not None and self.current.returncode is None:
            self.host.pool.kill_now(self.current, "restart")

    def show_slate(self, seconds: float, params: dict[str, Any]) -> None:
        """Put the error screen on air for ``seconds`` (operator test / maintenance), then the program."""
        self._slate = (self.host.clock.monotonic() + seconds, params)
        self._wake.set()
        if self.current is not None and self.current.returncode is None and self.current_plan \
                and self.current_plan.kind == "program":
            self.host.pool.kill_now(self.current, "slate")

    # ------------------------------------------------------------ planning
    def _air_time(self) -> float:
        assert self.pacer is not None and self.splicer is not None
        return self.pacer.air_time_of(self.splicer.next_start())

    def plan_program(self, previous: SegmentPlan | None, previous_outcome: SegmentOutcome | None) -> SegmentPlan:
        assert self.schedule is not None
        air = self._air_time()
        slot = self.schedule.at(air)
        if slot.remaining < 0.5:
            slot = self.schedule.at(slot.end + 1e-3)
        if previous and previous.slot and previous_outcome and previous_outcome.ok \
                and previous.slot.index == slot.index and abs(previous.slot.start - slot.start) < 1e-3:
            # the file ended earlier than probed: move on instead of replaying its tail
            slot = self.schedule.at(slot.end + 1e-3)
        item = slot.item
        src = FileSource(item.path, slot.offset, slot.remaining, item.has_video, item.has_audio)
        argv = program_command(self.host.ffmpeg_path, src, self.host.profile)
        return SegmentPlan("program", slot, argv, item.title)

    # ------------------------------------------------------------ supervisor
    async def _supervise(self) -> None:
        plan: SegmentPlan | None = None
        outcome: SegmentOutcome | None = None
        try:
            while True:
                if self._slate is not None:
                    until, params = self._slate
                    remaining = until - self.host.clock.monotonic()
                    if remaining > 0.2:
                        await self._run_error_screen(params.get("reason", "maintenance"), remaining, params)
                        continue
                    self._slate = None
                plan = self.plan_program(plan, outcome)
                outcome = await self._run_plan(plan)
                if outcome is None:  # spawn refused
                    await self._recover("spawn rejected")
                    continue
                if outcome.ok or outcome.stopped:
                    continue
                self.failures += 1
                self.last_error = outcome.reason
                self.breaker.record_failure(outcome.reason)
                self.host.events.emit("pipeline_failed", f"channel {self.number}: {outcome.reason}", self.number,
                                      level=logging.WARNING, reason=outcome.reason)
                await self._recover(outcome.reason)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("channel %s supervisor crashed", self.number)
            self.last_error = "internal error (see log)"
            raise
        finally:
            cur = self.current
            if cur is not None and cur.returncode is None:
                await asyncio.shield(self.host.pool.terminate(cur, "channel stopped"))

    async def _recover(self, reason: str) -> None:
        """After a failure: ask ``request_channel_restart`` until accepted; cover the wait."""
        self._set_state(ChannelState.RECOVERING)
        self._restart_requested = False
        while True:
            decision = self.host.request_channel_restart(self.number, source="pipeline", reason=reason)
            if decision.accepted or self._restart_requested:
                return
            wait = max(0.2, decision.retry_after_seconds)
            if not await self._run_error_screen(reason, wait, {"return_in": wait}):
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
            if self._restart_requested:
                return

    async def _run_error_screen(self, reason: str, seconds: float, params: dict[str, Any]) -> bool:
        """Fill ``seconds`` with the error screen; False if none could be run (caller waits instead)."""
        argv = self.host.error_screen_command(self, reason, seconds) if params is not None else None
        if argv is None:
            return False
        plan = SegmentPlan("error_screen", None, argv, params.get("title") or "Technical difficulties")
        self._set_state(ChannelState.ERROR_SCREEN)
        outcome = await self._run_plan(plan, check_breaker=False)
        return outcome is not None

    async def _run_plan(self, plan: SegmentPlan, check_breaker: bool = True) -> SegmentOutcome | None:
        assert self.splicer is not None and self.pacer is not None
        try:
            mp = await self.host.pool.spawn(plan.argv, channel_id=self.number, role=plan.kind,
                                            owner_alive=self.owner_alive, check_breaker=check_breaker
                                            and plan.kind == "program")
        except SpawnRejected as exc:
            self.last_error = str(exc)
            return None
        self.current, self.current_plan = mp, plan
        self.recent_plans.append(plan)
        self.segments_started += 1
        try:
            return await self._run_segment(mp, plan)
        finally:
            self.current = None

    async def _run_segment(self, mp: ManagedProcess, plan: SegmentPlan) -> SegmentOutcome:
        splicer, pacer = self.splicer, self.pacer
        assert splicer is not None and pacer is not None and mp.proc.stdout is not None
        clock = self.host.clock
        parser = ProgressParser()
        stderr_task = asyncio.get_running_loop().create_task(self._read_progress(mp, parser))
        splicer.begin_segment()
        start_media = splicer.next_start()
        got_output = False
        reason = ""
        timeout = self.ffcfg.start_timeout_seconds
        stall = self.host.pool.cfg.stall_timeout_seconds
        try:
            while True:
                try:
                    data = await asyncio.wait_for(mp.proc.stdout.read(1 << 16), timeout)
                except asyncio.TimeoutError:
                    reason = (f"no first output within {timeout:g}s" if not got_output
                              else f"stalled: no output for {timeout:g}s")
                    self.host.pool.kill_now(mp, reason)
                    break
                if not data:
                    break
                mp.touch(clock.monotonic())
                if not got_output:
                    got_output = True
                    timeout = stall
                    self._on_first_output(plan, start_media)
                pacer.push(splicer.feed(data))
                await asyncio.sleep(0)  # let the pacer and viewers run between reads
                # backpressure: read on only when little is waiting (FFmpeg then blocks on the pipe)
                while pacer.ahead_seconds() >= self.streaming.readahead_seconds and not mp.killed_by_us:
                    await pacer.wait_space(self.streaming.readahead_seconds)
                    mp.touch(clock.monotonic())  # held back by us, not stalled
                if mp.killed_by_us:
                    break  # restart, slate or stop: the rest of its output is not wanted
            rc = await mp.proc.wait()
        finally:
            if mp.returncode is None:
                await self.host.pool.terminate(mp, "segment ended")
            await asyncio.gather(stderr_task, return_exceptions=True)
            self.host.pool.release(mp)
        clean = rc == 0 and not mp.killed_by_us
        pacer.push(splicer.end_segment(clean))
        end_media = splicer.next_start()
        media = ((end_media or 0) - (start_media or end_media or 0)) / CLOCK
        self.stderr_tail = parser.tail_text()
        if clean:
            return SegmentOutcome(True, False, "ended", media, rc)
        if mp.killed_by_us and not reason:
            return SegmentOutcome(False, True, mp.kill_reason or "stopped", media, rc)
        if not reason:
            detail = parser.last_error()
            reason = f"ffmpeg exited with code {rc}" if rc is not None and rc > 0 else f"ffmpeg killed by signal {-rc}"
            if detail:
                reason += f": {detail[-200:]}"
        if plan.kind == "error_screen":
            log.warning("channel %s error screen failed: %s", self.number, reason)
            return SegmentOutcome(False, True, reason, media, rc)
        return SegmentOutcome(False, False, reason, media, rc)

    def _on_first_output(self, plan: SegmentPlan, media_start: int | None) -> None:
        assert self.pacer is not None
        air = self.pacer.air_time_of(media_start)
        if plan.kind == "program":
            self.breaker.record_success()
            self._set_state(ChannelState.PLAYING)
            slot = plan.slot
            entry = OnAir("program", plan.title, slot.start if slot else None, slot.end if slot else None, air)
        else:
            self._set_state(ChannelState.ERROR_SCREEN)
            entry = OnAir("error_screen", plan.title, None, None, air)
        self._air_queue.append(entry)

    @property
    def on_air(self) -> OnAir | None:
        """What viewers see now: the latest segment whose first frame has reached the air."""
        now = self.host.clock.time()
        while len(self._air_queue) > 1 and self._air_queue[1].since <= now:
            self._air_queue.popleft()
        return self._air_queue[0] if self._air_queue and self._air_queue[0].since <= now + 0.5 else None

    async def _read_progress(self, mp: ManagedProcess, parser: ProgressParser) -> None:
        assert mp.proc.stderr is not None
        clock = self.host.clock
        while True:
            line = await mp.proc.stderr.readline()
            if not line:
                return
            sample = parser.feed_line(line.decode("utf-8", "replace"))
            if sample is not None:
                mp.touch(clock.monotonic())
                self.progress = sample
                self.progress_at = clock.monotonic()
                self.progress_history.append((clock.time(), sample.fps, sample.speed, sample.bitrate_kbps,
                                              sample.drop_frames))

    # ------------------------------------------------------------ reading
    def now_playing(self) -> Slot | None:
        return self.schedule.at(self.host.clock.time()) if self.schedule else None

    def snapshot(self) -> dict[str, Any]:
        slot = self.now_playing()
        b = self.broadcaster
        return {
            "number": self.number,
            "name": self.name,
            "group": self.cfg.group,
            "logo": self.cfg.logo,
            "state": self.state.value,
            "viewers": self.viewers,
            "now_playing": None if slot is None else {
                "title": slot.item.title, "start": slot.start, "end": slot.end,
                "offset_seconds": round(slot.offset, 3), "path": slot.item.path},
            "on_air": None if self.on_air is None else {
                "kind": self.on_air.kind, "title": self.on_air.title, "start": self.on_air.start,
                "end": self.on_air.end},
            "pid": self.current.pid if self.current is not None and self.current.returncode is None else None,
            "restarts": self.restarts,
            "failures": self.failures,
            "last_error": self.last_error or self.unavailable_reason or "",
            "bytes_out": b.total_bytes if b is not None else 0,
            "buffered_seconds": round(b.buffered_seconds, 3) if b is not None else 0.0,
            "uptime_seconds": round(self.host.clock.monotonic() - self.started_at, 3)
            if self.started_at is not None and self.running else 0.0,
            "ffmpeg": {"fps": self.progress.fps, "speed": self.progress.speed,
                       "bitrate_kbps": self.progress.bitrate_kbps, "drop_frames": self.progress.drop_frames,
                       "dup_frames": self.progress.dup_frames, "out_time": self.progress.out_time},
        }


__all__ = ["Channel", "ChannelState", "Viewer", "SegmentPlan", "SegmentOutcome", "field"]
