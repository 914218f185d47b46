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
import os
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from .broadcaster import Broadcaster, Cursor
from .circuit_breaker import CircuitBreaker
from .clock import Clock
from .config import AiAutoHealConfig, ChannelConfig, FFmpegConfig, StreamingConfig
from .events import EventLog
from .ffmpeg_command import FileSource, OutputProfile, program_command
from .mpegts import CLOCK
from .pacer import Pacer
from .splicer import Splicer
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
    SCANNING = "scanning"  # its media is still being probed (start-up of a new library)


class ChannelHost(Protocol):
    clock: Clock
    pool: ProcessPoolManager
    events: EventLog
    ffmpeg_path: str
    profile: OutputProfile

    def request_channel_restart(self, channel_id: int, source: str, reason: str = "") -> RestartDecision: ...

    auto_heal: AiAutoHealConfig

    def error_screen_command(self, channel: "Channel", reason: str, duration: float | None,
                             params: dict[str, Any] | None = None) -> list[str] | None: ...

    def schedule_changed(self, channel: "Channel", schedule: Schedule) -> None: ...

    def correct_duration(self, path: str, duration: float) -> None: ...


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
    start_media: int | None = None  # splicer time where its output began
    media_error: str | None = None  # the file itself cannot be played (not a pipeline failure)
    segment: int | None = None  # the splicer segment it was (what to drop when it failed)


# What FFmpeg says when the *input* is the problem (missing, unreadable, not media, no such stream).
MEDIA_ERRORS = ("No such file or directory", "Permission denied", "Invalid data found when processing input",
                "moov atom not found", "could not find codec parameters", "does not contain any stream",
                "matches no streams", "Error opening input", "Is a directory", "End of file")


def media_error_in(tail: str) -> str | None:
    for line in reversed(tail.splitlines()[-8:]):
        for pattern in MEDIA_ERRORS:
            if pattern.lower() in line.lower():
                if pattern == "No such file or directory":  # deleted after the look before spawning
                    return f"file not found (deleted or renamed): {line.strip()[-160:]}"
                return line.strip()[-200:]
    return None


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
        self._unavailable_reason = unavailable_reason
        self.state = ChannelState.IDLE if schedule else ChannelState.UNAVAILABLE
        self.media_problems: dict[str, str] = {}  # path -> why it is skipped (bounded)
        self.base_items = list(schedule.items) if schedule else []  # the lineup as built (files may come back)
        self.scan_total = 0
        self.scan_done = 0
        self.skipped_airings = 0  # programmes skipped because their file could not be played
        self.short_airings = 0  # programmes that ended before their probed length
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
        self.speed_window: deque[tuple[float, float]] = deque(maxlen=120)  # (monotonic, out_time) of this process
        self.last_error = ""
        self.stderr_tail = ""
        self.restarts = 0
        self.failures = 0
        self.error_screen_seconds = 0.0  # media seconds of error screen sent (metrics)
        self.started_at: float | None = None  # monotonic, pipeline start
        self.segment_started_at: float | None = None  # monotonic, the current process's start
        self.segments_started = 0
        self.bytes_out_at_last_check = 0
        self._task: asyncio.Task | None = None
        self._pacer_task: asyncio.Task | None = None
        self._grace: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._restart_requested = False
        self._slate: tuple[float, dict[str, Any]] | None = None  # operator slate: (until monotonic, params)
        self._standby: Standby | None = None
        self._stopped: asyncio.Event | None = None  # set while a run is being stopped
        self._crashes = 0
        self._error_screen_since: float | None = None  # when the current error screen reaches the air
        self.on_state_change: Callable[["Channel", ChannelState], None] | None = None

    # ------------------------------------------------------------ media
    @property
    def unavailable_reason(self) -> str | None:
        if self.state is ChannelState.SCANNING:
            return f"its media is still being probed ({self.scan_done} of {self.scan_total} files)"
        return self._unavailable_reason

    def set_scanning(self, total: int) -> None:
        self.scan_total, self.scan_done = total, 0
        self._set_state(ChannelState.SCANNING)

    def set_schedule(self, schedule: Schedule | None, reason: str | None) -> None:
        self.schedule, self._unavailable_reason = schedule, reason
        self.base_items = list(schedule.items) if schedule else []
        if not self.running:
            self._set_state(ChannelState.IDLE if schedule else ChannelState.UNAVAILABLE)

    def report_media_problem(self, path: str, reason: str) -> None:
        """A file that is skipped: kept for the API and console, an event (once per file and reason),
        and ``last_error``. Never a channel failure (no breaker count)."""
        if self.media_problems.get(path) == reason:
            return
        if len(self.media_problems) >= 500 and path not in self.media_problems:
            self.media_problems.pop(next(iter(self.media_problems)))
        self.media_problems[path] = reason
        self.last_error = f"{path}: {reason}"
        self.host.events.emit("media_problem", f"channel {self.number}: skipping {path}: {reason}", self.number,
                              level=logging.WARNING, path=path, reason=reason)

    # ------------------------------------------------------------ viewers
    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def attach(self) -> Viewer:
        """A viewer joins: start the pipeline if needed and return the viewer's cursor.

        A run that is being stopped (grace period over) finishes stopping first, so two runs of
        one channel never overlap."""
        if self.schedule is None:
            raise RuntimeError(self.unavailable_reason or "channel has nothing to play")
        while self._stopped is not None:
            await self._stopped.wait()
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
        self.splicer = Splicer(self.streaming.timeline_start_ticks)
        self.pacer = Pacer(self.host.clock, self.broadcaster, self.streaming.lead_seconds)
        self.pacer.header_source = self.splicer.header
        self.started_at = self.host.clock.monotonic()
        self._restart_requested = False
        self._set_state(ChannelState.STARTING)
        loop = asyncio.get_running_loop()
        self._pacer_task = loop.create_task(self.pacer.run(), name=f"pacer-{self.number}")
        self._task = loop.create_task(self._supervise(), name=f"channel-{self.number}")
        self.host.events.emit("channel_started", f"channel {self.number} pipeline started", self.number)

    async def stop(self) -> None:
        """Stop the running pipeline: supervisor (and its FFmpeg), pacer, fan-out."""
        task, self._task = self._task, None
        pacer_task, self._pacer_task = self._pacer_task, None
        pacer, broadcaster = self.pacer, self.broadcaster
        if self._grace is not None and self._grace is not asyncio.current_task():
            self._grace.cancel()
        self._grace = None
        if task is None and pacer_task is None:
            return
        stopped = self._stopped = asyncio.Event()
        self._set_state(ChannelState.STOPPING)
        if task is not None:
            # cancel until it is really done: on Python 3.11 asyncio.wait_for can swallow a
            # cancellation that arrives as its inner read completes (fixed in 3.12)
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=1.0)
        if pacer is not None:
            pacer.close()
        if pacer_task is not None:
            pacer_task.cancel()
        if broadcaster is not None:
            broadcaster.close()
        self.viewers = 0
        self._air_queue.clear()
        self._set_state(ChannelState.IDLE if self.schedule else ChannelState.UNAVAILABLE)
        if self.scan_total and self.schedule is None and self.scan_done < self.scan_total:
            self._set_state(ChannelState.SCANNING)
        self._stopped = None
        stopped.set()  # viewers waiting in attach() may start a new run now

    def owner_alive(self) -> bool:
        return self.running

    @property
    def slate_active(self) -> bool:
        return self._slate is not None

    def fail_current(self, reason: str) -> bool:
        """End the current process as a failure (health task: unhealthy); recovery follows."""
        cur = self.current
        if cur is None or cur.returncode is not None:
            return False
        self.host.pool.kill_now(cur, reason, failure=True)
        return True

    def restart(self, hot: bool = False) -> None:
        """Called by the engine once ``request_channel_restart`` accepted.

        ``hot``: start the new pipeline first and switch viewers to it at its first keyframe
        (no error screen, no gap); otherwise end the current process and start afresh.
        """
        self.restarts += 1
        self._restart_requested = True
        self._wake.set()
        cur, plan = self.current, self.current_plan
        if hot and cur is not None and cur.returncode is None and plan is not None and plan.kind == "program" \
                and self._standby is None:
            self._begin_standby(self.plan_program(None, None, ahead=self.streaming.readahead_seconds))
            return
        if cur is not None and cur.returncode is None:
            self.host.pool.kill_now(cur, "restart")

    def show_slate(self, seconds: float, params: dict[str, Any]) -> None:
        """Put the error screen on air for ``seconds`` (operator test / maintenance), then the program."""
        self._slate = (self.host.clock.monotonic() + seconds, params)
        self._wake.set()
        cur = self.current
        if cur is not None and cur.returncode is None and self.current_plan and self.current_plan.kind == "program":
            self.host.pool.kill_now(cur, "slate")

    # ------------------------------------------------------------ planning
    def _air_time(self) -> float:
        assert self.pacer is not None and self.splicer is not None
        return self.pacer.air_time_of(self.splicer.next_start())

    def plan_program(self, previous: SegmentPlan | None = None, previous_outcome: SegmentOutcome | None = None,
                     ahead: float = 0.0) -> SegmentPlan:
        """What airs next: the schedule's programme at the air time of the next frame (plus ``ahead``:
        a standby that airs after an error screen is planned for when it will air)."""
        assert self.schedule is not None
        air = self._air_time() + ahead
        slot = self.schedule.at(air)
        if slot.remaining < 0.5:
            slot = self.schedule.at(slot.end + 1e-3)
        item = slot.item
        src = FileSource(item.path, slot.offset, slot.remaining, item.has_video, item.has_audio, item.cover)
        argv = program_command(self.host.ffmpeg_path, src, self.host.profile)
        return SegmentPlan("program", slot, argv, item.title)

    def file_problem(self, plan: SegmentPlan) -> str | None:
        """A cheap look before spawning: is the programme's file there and not empty?"""
        if plan.slot is None:
            return None
        try:
            st = os.stat(plan.slot.item.path)
        except FileNotFoundError:
            return "file not found (deleted or renamed)"
        except OSError as exc:
            return f"cannot read file ({exc.strerror or exc})"
        if st.st_size == 0:
            return "empty file (0 bytes)"
        return None

    def _reschedule(self, schedule: Schedule | None, why: str) -> None:
        """The schedule changed at run time (a file skipped, a programme shorter than probed):
        the guide follows, and the new epoch is stored so a restart keeps it."""
        if schedule is None:
            self.schedule = None
            self._unavailable_reason = f"nothing playable left: {why}"
            self.host.events.emit("channel_unavailable", f"channel {self.number}: {self._unavailable_reason}",
                                  self.number, level=logging.WARNING)
            return
        self.schedule = schedule
        self.host.schedule_changed(self, schedule)
        nxt = schedule.at(self._air_time() + 1e-3)
        self.host.events.emit("schedule_changed", f"channel {self.number}: {why}; \"{nxt.item.title}\" airs now "
                              "and the guide follows", self.number)

    def skip_programme(self, plan: SegmentPlan, reason: str) -> None:
        """The programme's file cannot be played: report it and start the next one now (no failure)."""
        assert plan.slot is not None and self.schedule is not None
        path = plan.slot.item.path
        self.report_media_problem(path, reason)
        self.skipped_airings += 1
        self._reschedule(self.schedule.without(path, self._air_time()), f"skipped {path} ({reason})")

    def programme_ended_early(self, plan: SegmentPlan, real_duration: float) -> None:
        """The file ends before its probed length (an incomplete download): the next programme
        starts now, the guide follows, and the probe cache learns the real length."""
        assert plan.slot is not None and self.schedule is not None
        item = plan.slot.item
        self.short_airings += 1
        self.host.correct_duration(item.path, real_duration)
        self.host.events.emit("media_short", f"channel {self.number}: {item.path} ends at {real_duration:.1f}s, "
                              f"not {item.duration:.1f}s as probed", self.number, level=logging.WARNING,
                              path=item.path)
        self._reschedule(self.schedule.shortened(plan.slot.index, real_duration, self._air_time()),
                         f"{item.title} ended {item.duration - real_duration:.1f}s early")

    def _cut_to_air(self, from_segment: int | None = None) -> None:
        """Drop encoded-but-unsent media so what comes next airs at once (failure, slate, return).

        ``from_segment``: only that splicer segment's output (a failed segment's own)."""
        assert self.pacer is not None and self.splicer is not None
        if self.pacer.truncate(from_segment):
            self.splicer.rebase(self.pacer.kept_ends())

    # ------------------------------------------------------------ standby (hot swap, recovery)
    def _begin_standby(self, plan: SegmentPlan) -> "Standby":
        self._standby = Standby(self, plan)
        return self._standby

    async def _drop_standby(self) -> None:
        sb, self._standby = self._standby, None
        if sb is not None:
            await sb.discard()

    # ------------------------------------------------------------ supervisor
    async def _supervise(self) -> None:
        plan: SegmentPlan | None = None
        outcome: SegmentOutcome | None = None
        try:
            while not self._halted():
                if self._slate is not None:
                    await self._run_slate()
                    plan, outcome = None, None
                    if self._standby is None:
                        continue
                if self.schedule is None:  # nothing playable left: the error screen says so
                    await self._nothing_to_play()
                    continue
                sb = self._standby
                if sb is not None and sb.ready.is_set() and sb.mp is not None:
                    self._standby = None
                    plan = sb.plan
                    outcome = await self._adopt(sb)
                else:
                    await self._drop_standby()
                    plan = self.plan_program(plan, outcome)
                    problem = self.file_problem(plan)
                    if problem is not None:
                        self.skip_programme(plan, problem)
                        continue
                    outcome = await self._run_plan(plan)
                if outcome is None:  # spawn refused (counted on the breaker by the pool)
                    await self._recover("spawn rejected: " + self.last_error)
                    continue
                if outcome.media_error is not None:
                    self._cut_to_air(outcome.segment)  # only its own output, never the tail on air
                    self.skip_programme(plan, outcome.media_error)
                    continue
                if outcome.ok:
                    self._restart_requested = False
                    slot = plan.slot
                    if plan.kind == "program" and slot is not None and \
                            slot.remaining - outcome.media_seconds > 1.0 and self.schedule is not None:
                        self.programme_ended_early(plan, slot.offset + max(0.0, outcome.media_seconds))
                    continue
                if outcome.stopped:
                    self._restart_requested = False
                    continue
                await self._failed(outcome.reason)
                await self._recover(outcome.reason, outcome.segment)
        except asyncio.CancelledError:
            raise
        except Exception:
            # a bug must not leave viewers hanging: log it, count it, and start the supervisor again
            log.exception("channel %s supervisor crashed; restarting it", self.number)
            self.last_error = "internal error (see log)"
            self._set_state(ChannelState.RECOVERING)  # never "playing" while nothing is sent
            if self.running:
                self._crashes += 1
                delay = min(30.0, 0.25 * 2 ** min(self._crashes, 8))  # a bug that repeats must not spin
                asyncio.get_running_loop().call_later(delay, self._respawn_supervisor)
        finally:
            await asyncio.shield(self._cleanup_processes())

    def _halted(self) -> bool:
        """stop() clears ``_task`` before cancelling: even a lost cancellation ends the loops."""
        return self._task is not asyncio.current_task()

    def _respawn_supervisor(self) -> None:
        if self._task is not None and self._task.done() and not self._stopped:
            self.breaker.record_failure("internal error")
            self._task = asyncio.get_running_loop().create_task(self._supervise(), name=f"channel-{self.number}")

    async def _cleanup_processes(self) -> None:
        await self._drop_standby()
        cur = self.current
        if cur is not None and cur.returncode is None:
            await self.host.pool.terminate(cur, "channel stopped")

    async def _failed(self, reason: str) -> None:
        self.failures += 1
        self.last_error = reason
        self.breaker.record_failure(reason)
        self.host.events.emit("pipeline_failed", f"channel {self.number}: {reason}", self.number,
                              level=logging.WARNING, reason=reason)

    async def _recover(self, reason: str, failed_segment: int | None = None) -> None:
        """After a failure: error screen at once (when enabled) while ``request_channel_restart`` is
        asked until it accepts; the restarted program replaces the error screen at its first keyframe.

        ``failed_segment``: the failed process's splicer segment; only that is dropped, so what
        was already on its way (the end of the previous programme) still airs."""
        self._set_state(ChannelState.RECOVERING)
        fallback = self.host.auto_heal.use_error_screen_fallback
        if fallback:
            self._cut_to_air(failed_segment)
        if await self._standby_takes_over(reason, fallback):
            return
        self._restart_requested = False
        while not self._halted():
            if self.schedule is None:
                return
            decision = self.host.request_channel_restart(self.number, source="pipeline", reason=reason)
            if decision.accepted or self._restart_requested:
                self._restart_requested = False
                # planned for when it will air: after the error screen's minimum time on air
                ahead = self.host.auto_heal.min_error_screen_seconds if fallback else 0.0
                sb = self._begin_standby(self.plan_program(ahead=ahead))
                if not fallback or not await self._run_error_screen(reason, {}, until=sb):
                    await sb.done.wait()
                if sb.ready.is_set():
                    if fallback:
                        self._cut_to_air()  # the programme replaces the error screen now
                    return
                self._standby = None
                await sb.discard()
                if sb.media_error is not None:  # the file, not the pipeline: skip it, no failure
                    self.skip_programme(sb.plan, sb.media_error)
                    return
                if sb.ended_early:  # the file ends before the planned offset: move on, no failure
                    assert sb.plan.slot is not None
                    self.programme_ended_early(sb.plan, sb.plan.slot.offset)
                    return
                reason = sb.failed or "restart failed"
                if "spawn rejected" not in reason:
                    await self._failed(reason)
                continue
            wait = max(0.2, decision.retry_after_seconds)
            deadline = self.host.clock.monotonic() + wait
            params = {"return_in": wait}
            shown = fallback and await self._run_error_screen(
                reason, params, stop_when=lambda: self._restart_requested or self.host.clock.monotonic() >= deadline)
            if not shown:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - self.host.clock.monotonic()))
                except asyncio.TimeoutError:
                    pass

    async def _standby_takes_over(self, reason: str, fallback: bool) -> bool:
        """A restart was accepted just before the failure: its replacement is starting already and
        becomes the programme (error screen until it has output), instead of being orphaned."""
        sb = self._standby
        if sb is None or sb.plan.kind != "program":
            return False
        shown = False
        if not sb.ready.is_set():
            shown = fallback and await self._run_error_screen(reason, {}, until=sb)
            if not shown:
                await sb.done.wait()
        if sb.ready.is_set():
            if shown:
                self._cut_to_air()  # the replacement follows the error screen at once
            self.host.events.emit("standby_adopted", f"channel {self.number}: the replacement started by the "
                                  "restart takes over", self.number)
            return True  # the supervisor adopts it next
        self._standby = None
        await sb.discard()
        return False

    async def _run_slate(self) -> None:
        """Operator slate: error screen now, then the programme from a standby started a second early."""
        assert self._slate is not None
        until, params = self._slate
        self._cut_to_air()
        clock = self.host.clock

        def stop() -> bool:
            if self._slate is not None and self._slate[0] != until:  # a new slate request replaces this one
                return True
            if self._standby is None and clock.monotonic() >= until - 1.0:
                self._begin_standby(self.plan_program(None, None))
            sb = self._standby
            return sb is not None and (sb.ready.is_set() or sb.done.is_set())

        shown = await self._run_error_screen(params.get("reason", "maintenance"), params, stop_when=stop)
        if self._slate is not None and self._slate[0] == until:
            self._slate = None
        if not shown:
            self._set_state(ChannelState.RECOVERING)
        elif self._standby is not None and self._standby.ready.is_set():
            self._cut_to_air()

    def _files_back(self) -> bool:
        """While nothing is playable: have files of the lineup come back? Then play them again."""
        clock = self.host.clock
        if clock.monotonic() < getattr(self, "_next_look", 0.0):
            return self.schedule is not None
        self._next_look = clock.monotonic() + 5.0
        back = [i for i in self.base_items if self.file_problem(SegmentPlan("program", Slot(0, i, 0, 0, 0), [], ""))
                is None]
        if back and self.schedule is None:
            new = Schedule(back, 0.0)
            new.epoch = self._air_time()
            self.schedule = new
            self.host.schedule_changed(self, new)
            self.host.events.emit("schedule_changed", f"channel {self.number}: {len(back)} file(s) are back; "
                                  f"\"{back[0].title}\" airs now", self.number)
        return self.schedule is not None

    async def _nothing_to_play(self) -> None:
        """Every file of the lineup is gone: viewers see the error screen saying so (no failure)."""
        reason = self._unavailable_reason or "nothing to play"
        shown = await self._run_error_screen(reason, {"title": "Channel unavailable", "subtitle": reason[:200]},
                                             stop_when=self._files_back)
        if not shown:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
            self._files_back()

    async def _run_error_screen(self, reason: str, params: dict[str, Any], until: "Standby | None" = None,
                                stop_when: Callable[[], bool] | None = None) -> bool:
        """Run the error screen until ``until`` is ready / ``stop_when()``; False if none could run."""
        argv = self.host.error_screen_command(self, reason, None, params)
        if argv is None:
            return False
        if until is not None:
            # at least ``min_error_screen_seconds`` on air: a fraction of a second reads as a glitch
            minimum = self.host.auto_heal.min_error_screen_seconds
            clock = self.host.clock
            self._error_screen_since = None

            # what follows airs after what was already sent (``lead`` seconds ahead of the screen)
            on_screen = max(0.0, minimum - self.streaming.lead_seconds)

            def stop_when() -> bool:
                shown = self._error_screen_since is not None and \
                    clock.monotonic() - self._error_screen_since >= on_screen
                return until.done.is_set() and (shown or not until.ready.is_set())
        plan = SegmentPlan("error_screen", None, argv, params.get("title") or "Technical difficulties")
        self._set_state(ChannelState.ERROR_SCREEN)
        outcome = await self._run_plan(plan, stop_when=stop_when)
        return outcome is not None

    async def _run_plan(self, plan: SegmentPlan, stop_when: Callable[[], bool] | None = None,
                        ) -> SegmentOutcome | None:
        assert self.splicer is not None and self.pacer is not None
        try:
            mp = await self.host.pool.spawn(plan.argv, channel_id=self.number, role=plan.kind,
                                            owner_alive=self.owner_alive, check_breaker=plan.kind == "program")
        except SpawnRejected as exc:
            self.last_error = str(exc)
            return None
        return await self._own(mp, plan, b"", stop_when)

    async def _adopt(self, sb: "Standby") -> SegmentOutcome:
        assert sb.mp is not None
        self.host.events.emit("hot_swap", f"channel {self.number}: switched to the new pipeline at its first "
                              "keyframe", self.number, pid=sb.mp.pid)
        return await self._own(sb.mp, sb.plan, bytes(sb.prefix), None)

    async def _own(self, mp: ManagedProcess, plan: SegmentPlan, prefix: bytes,
                   stop_when: Callable[[], bool] | None) -> SegmentOutcome:
        self.current, self.current_plan = mp, plan
        self.recent_plans.append(plan)
        self.segments_started += 1
        if stop_when is None and plan.kind == "program":
            stop_when = self._standby_ready
        try:
            return await self._run_segment(mp, plan, prefix, stop_when)
        finally:
            self.current = None

    def _standby_ready(self) -> bool:
        sb = self._standby
        return sb is not None and sb.ready.is_set()

    async def _run_segment(self, mp: ManagedProcess, plan: SegmentPlan, prefix: bytes = b"",
                           stop_when: Callable[[], bool] | None = None) -> SegmentOutcome:
        splicer, pacer = self.splicer, self.pacer
        assert splicer is not None and pacer is not None and mp.proc.stdout is not None
        clock = self.host.clock
        parser = ProgressParser()
        self.progress = ProgressSample()  # a new process is judged on its own progress
        self.speed_window.clear()
        self.progress_at = clock.monotonic()
        self.segment_started_at = clock.monotonic()
        stderr_task = asyncio.get_running_loop().create_task(self._read_progress(mp, parser))
        splicer.begin_segment()
        segment = splicer.segments
        start_media = splicer.next_start()
        got_output = False
        reason = ""
        timeout = self.ffcfg.start_timeout_seconds
        stall = self.host.pool.cfg.stall_timeout_seconds
        space_wait = 0.1 if stop_when is not None else 1.0
        rc: int | None = None
        try:
            pending = prefix
            while True:
                if stop_when is not None and stop_when():
                    self.host.pool.kill_now(mp, "switched")
                    break
                if self._halted():
                    self.host.pool.kill_now(mp, "channel stopped")
                    break
                if pending:
                    data, pending = pending, b""
                else:
                    try:
                        data = await asyncio.wait_for(mp.proc.stdout.read(1 << 16), min(timeout, 0.5)
                                                      if stop_when is not None else timeout)
                    except asyncio.TimeoutError:
                        if stop_when is not None and clock.monotonic() - mp.last_activity < timeout:
                            continue  # only a chance to look at stop_when
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
                pacer.video_pid = splicer.video_pid
                await asyncio.sleep(0)  # let the pacer and viewers run between reads
                # backpressure: read on only when little is waiting (FFmpeg then blocks on the pipe)
                while pacer.ahead_seconds() >= self.streaming.readahead_seconds and not mp.killed_by_us \
                        and mp.returncode is None:  # a crash is noticed now, not after the buffer drains
                    await pacer.wait_space(self.streaming.readahead_seconds, space_wait)
                    mp.touch(clock.monotonic())  # held back by us, not stalled
                    if stop_when is not None and stop_when():
                        break
                if mp.killed_by_us:
                    break  # restart, slate or stop: the rest of its output is not wanted
                if mp.returncode is not None and mp.returncode != 0:
                    self.host.pool.discard_output(mp)  # crashed: what it left in the pipe is not wanted
                    break
            rc = await mp.proc.wait()
        finally:
            if mp.returncode is None:
                await self.host.pool.terminate(mp, "segment ended")
            await asyncio.gather(stderr_task, return_exceptions=True)
            self.host.pool.release(mp)
        rc = mp.returncode
        clean = rc == 0 and not mp.killed_by_us
        pacer.push(splicer.end_segment(clean))
        end_media = splicer.next_start()
        if start_media is None:
            start_media = splicer.segment_start  # the first segment of a run starts where its media does
        media = ((end_media or 0) - (start_media if start_media is not None else end_media or 0)) / CLOCK
        self.stderr_tail = parser.tail_text()
        if plan.kind == "error_screen":
            self.error_screen_seconds += max(0.0, media)
        if clean:
            return SegmentOutcome(True, False, "ended", media, rc, start_media, segment=segment)
        if mp.killed_by_us and not reason and not mp.kill_is_failure:
            return SegmentOutcome(False, True, mp.kill_reason or "stopped", media, rc, start_media, segment=segment)
        if plan.kind == "program" and not got_output and not mp.killed_by_us:
            bad_input = media_error_in(self.stderr_tail)
            if bad_input is not None:
                return SegmentOutcome(False, False, bad_input, 0.0, rc, start_media, media_error=bad_input, segment=segment)
        if mp.kill_is_failure and not reason:
            reason = mp.kill_reason or "killed as unhealthy"
        if not reason:
            detail = parser.last_error()
            reason = f"ffmpeg exited with code {rc}" if rc is not None and rc > 0 else f"ffmpeg killed by signal {-rc}"
            if detail:
                reason += f": {detail[-200:]}"
        if plan.kind == "error_screen":
            log.warning("channel %s error screen failed: %s", self.number, reason)
            return SegmentOutcome(False, True, reason, media, rc, start_media, segment=segment)
        return SegmentOutcome(False, False, reason, media, rc, start_media, segment=segment)

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
            self._error_screen_since = self.host.clock.monotonic() + max(0.0, air - self.host.clock.time())
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
                self.speed_window.append((clock.monotonic(), sample.out_time))
                self.progress_history.append((clock.time(), sample.fps, sample.speed, sample.bitrate_kbps,
                                              sample.drop_frames))

    # ------------------------------------------------------------ reading
    def windowed_speed(self, seconds: float) -> float | None:
        """FFmpeg's speed over the last ``seconds`` (FFmpeg's own figure is since the process
        started, so always low in its first seconds); None without two samples in the window."""
        w = self.speed_window
        if len(w) < 2:
            return None
        end_t, end_out = w[-1]
        start = next(((t, o) for t, o in w if t >= end_t - seconds), w[0])
        span = end_t - start[0]
        return (end_out - start[1]) / span if span >= 1.0 else None

    def buffer_left(self) -> float:
        """Seconds of media the channel holds beyond what is on air now (what viewers can still be
        fed while FFmpeg is slow or stalled)."""
        p = self.pacer
        if p is None or not p.pending:
            return 0.0 if p is None or p.position() is None else max(0.0, (p.released_time - p.position()) / CLOCK)
        pos = p.position()
        return max(0.0, (p.pending[-1].time - (pos if pos is not None else p.pending[0].time)) / CLOCK)

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


class Standby:
    """A process started in the background that takes over once it has output.

    Used for hot swap (a healthy-but-degraded pipeline, the pool's long-run release) and for
    recovery behind an error screen: the viewers keep watching what is on until the new
    process has produced its first bytes, which begin with a keyframe.
    """

    def __init__(self, channel: Channel, plan: SegmentPlan) -> None:
        self.channel = channel
        self.plan = plan
        self.mp: ManagedProcess | None = None
        self.prefix = bytearray()
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.failed: str | None = None
        self.media_error: str | None = None  # the file cannot be played
        self.ended_early = False  # exited cleanly before any output: the file ends before the offset
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"standby-{channel.number}")

    async def _run(self) -> None:
        ch = self.channel
        pool = ch.host.pool
        try:
            try:
                self.mp = await pool.spawn(self.plan.argv, channel_id=ch.number, role=self.plan.kind,
                                           owner_alive=ch.owner_alive)
            except SpawnRejected as exc:
                self.failed = f"spawn rejected: {exc.reason.value}"
                return
            assert self.mp.proc.stdout is not None
            try:
                data = await asyncio.wait_for(self.mp.proc.stdout.read(1 << 16), ch.ffcfg.start_timeout_seconds)
            except asyncio.TimeoutError:
                self.failed = f"no first output within {ch.ffcfg.start_timeout_seconds:g}s"
                return
            if not data:
                rc = await self.mp.proc.wait()
                self.failed = f"ffmpeg exited with code {rc} before any output"
                if rc == 0:
                    self.ended_early = True
                else:
                    err = await self._stderr_tail()
                    self.media_error = media_error_in(err) if self.plan.kind == "program" else None
                return
            self.prefix += data
            self.mp.touch(ch.host.clock.monotonic())
            self.ready.set()
        finally:
            self.done.set()

    async def _stderr_tail(self) -> str:
        assert self.mp is not None and self.mp.proc.stderr is not None
        try:
            data = await asyncio.wait_for(self.mp.proc.stderr.read(), 2.0)
        except (asyncio.TimeoutError, OSError, ValueError):
            return ""
        return data.decode("utf-8", "replace")[-4000:]

    async def discard(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self.mp is not None:
            await self.channel.host.pool.terminate(self.mp, "standby discarded")


__all__ = ["Channel", "ChannelState", "Viewer", "SegmentPlan", "SegmentOutcome", "Standby"]
