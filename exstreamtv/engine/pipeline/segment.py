"""One pipeline segment of a channel: what runs (a plan), how it ended (an outcome), and
running it: an FFmpeg process whose output is spliced, paced and fanned out.

``SegmentRunner`` is the part of ``Channel`` that owns a running process: reading its
output under backpressure, noticing a crash or a stall at once, reading its progress, and
telling a file that cannot be played (the media's fault) from a failing pipeline.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..stream.mpegts import CLOCK
from ..guards.process_pool import ManagedProcess, SpawnRejected
from ..ffmpeg.progress import ProgressParser, ProgressSample
from .channel_state import ChannelState
from ..onair.schedule import Slot

if TYPE_CHECKING:
    from .standby import Standby

log = logging.getLogger("exstreamtv.channel")


@dataclass
class SegmentPlan:
    kind: str  # "program" or "error_screen"
    slot: Slot | None
    argv: list[str]
    title: str
    transcode: str = ""  # programme plans: "copy" or "encode: <why>"


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
class OnAir:
    kind: str
    title: str
    start: float | None
    end: float | None
    since: float



class SegmentRunner:
    """Running one process of the channel (a mixin of ``Channel``: it uses the channel's state)."""

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
            self.transcode = plan.transcode or None
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

