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
import dataclasses
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..stream.broadcaster import Broadcaster, Cursor
from ..guards.circuit_breaker import CircuitBreaker
from ..clock import Clock
from ..config import AiAutoHealConfig, ChannelConfig, FFmpegConfig, HlsConfig, StreamingConfig
from ..observe.events import EventLog
from ..ffmpeg.command import OutputProfile
from ..stream.mpegts import CLOCK
from ..stream.hls import Segmenter, first_sequence
from ..stream.pacer import Pacer
from ..stream.splicer import Splicer
from ..guards.process_pool import ManagedProcess, ProcessPoolManager
from ..ffmpeg.progress import ProgressSample
from ..guards.restart_guard import RestartDecision
from .planning import Planning
from .readings import Readings
from .recovery import Recovery
from ..onair.schedule import Schedule
from .channel_state import ChannelState
from .segment import OnAir, SegmentOutcome, SegmentPlan, SegmentRunner
from .standby import Standby

log = logging.getLogger("exstreamtv.channel")


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
class Viewer:
    channel: "Channel"
    broadcaster: Broadcaster
    cursor: Cursor
    attached: bool = True

    async def read(self, limit: int = 1 << 20) -> bytes:
        return await self.broadcaster.read(self.cursor, limit)

    def available(self, limit: int = 1 << 20) -> bytes:
        return self.broadcaster.available(self.cursor, limit)


class Channel(SegmentRunner, Recovery, Planning, Readings):
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
        self.base_items = schedule.items if schedule else []  # the lineup as built (files may come back; shared)
        self.scan_total = 0
        self.scan_done = 0
        self.skipped_airings = 0  # programmes skipped because their file could not be played
        self.short_airings = 0  # programmes that ended before their probed length
        self.viewers = 0
        self.broadcaster: Broadcaster | None = None
        self.splicer: Splicer | None = None
        self.pacer: Pacer | None = None
        self.hls_config: HlsConfig | None = None  # set by the engine: HLS segments cut from this channel
        self.hls: Segmenter | None = None
        self.lineup_parts: list = []  # LineupPart: the engine composes the schedule from these
        self.lineup_infos: dict = {}  # probed files of the path entries
        self.waiting_for: str | None = None  # e.g. a library's first scan
        self.transcode: str | None = None  # the programme on air: "copy" or "encode: <why>"
        self._encode_admitted = False  # this run passed the CPU guard for encoding
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
    def profile(self) -> OutputProfile:
        """The engine's output profile, or this channel's own (``profile:`` in its config)."""
        o = self.cfg.profile
        base = self.host.profile
        if o is None:
            return base
        w, h = o.width or base.width, o.height or base.height
        return dataclasses.replace(base, width=w - w % 2, height=h - h % 2, fps=o.fps or base.fps,
                                   video_bitrate_kbps=o.video_bitrate_kbps or base.video_bitrate_kbps,
                                   audio_bitrate_kbps=o.audio_bitrate_kbps or base.audio_bitrate_kbps)

    @property
    def unavailable_reason(self) -> str | None:
        if self.state is ChannelState.SCANNING:
            if self.waiting_for:
                return self.waiting_for
            return f"its media is still being probed ({self.scan_done} of {self.scan_total} files)"
        return self._unavailable_reason

    def set_scanning(self, total: int) -> None:
        self.scan_total, self.scan_done = total, 0
        self._set_state(ChannelState.SCANNING)

    def set_schedule(self, schedule: Schedule | None, reason: str | None) -> None:
        self.schedule, self._unavailable_reason = schedule, reason
        self.base_items = schedule.items if schedule else []
        if not self.running:
            self._set_state(ChannelState.IDLE if schedule else ChannelState.UNAVAILABLE)

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
        if self.hls_config is not None and self.hls_config.enabled:
            h = self.hls_config
            self.hls = Segmenter(h.segment_seconds, h.window_segments, self.ffcfg.keyframe_interval_seconds,
                                 self._wall_of, first_sequence(self.host.clock.time()))
            self.broadcaster.listeners.append(self.hls.on_chunk)
        self.started_at = self.host.clock.monotonic()
        self._encode_admitted = False
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
        if self.hls is not None:
            self.hls.close()
            self.hls = None
        self.viewers = 0
        self._air_queue.clear()
        self._set_state(ChannelState.IDLE if self.schedule else ChannelState.UNAVAILABLE)
        if self.scan_total and self.schedule is None and self.scan_done < self.scan_total:
            self._set_state(ChannelState.SCANNING)
        self._stopped = None
        stopped.set()  # viewers waiting in attach() may start a new run now

    def _wall_of(self, media_seconds: float) -> float:
        """Wall-clock time at which this channel-timeline instant is (or was) on air."""
        now = self.host.clock.time()
        pos = self.pacer.position() if self.pacer is not None else None
        return now if pos is None else now + media_seconds - pos / CLOCK

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


__all__ = ["Channel", "ChannelState", "Viewer", "SegmentPlan", "SegmentOutcome", "Standby"]
