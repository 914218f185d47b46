"""How a channel recovers: the error screen at once, restarts only through
``request_channel_restart``, the replacement taking over at its first keyframe; operator
slates; and a lineup whose files are all gone.

``Recovery`` is the part of ``Channel`` that handles failures (a mixin: it uses the
channel's state and its ``SegmentRunner``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from .channel_state import ChannelState
from ..onair.schedule import Schedule, Slot
from .segment import SegmentPlan

if TYPE_CHECKING:
    from .standby import Standby

log = logging.getLogger("exstreamtv.channel")

TAIL_HIDES_FAILURE = 1.5  # seconds of the previous programme still to air: enough to restart unseen
TAIL_MARGIN = 0.7  # the error screen starts when this little is left and the replacement is not ready


class Recovery:
    """Failure handling of a channel (a mixin of ``Channel``)."""

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
        # the failed process was reading ahead and a programme is still airing before its media:
        # the first restart may be ready before that tail ends (then nobody sees the failure)
        plans = self.recent_plans
        hide = fallback and len(plans) >= 2 and plans[-2].kind == "program" and \
            self.buffer_left() >= TAIL_HIDES_FAILURE
        self._restart_requested = False
        while not self._halted():
            if self.schedule is None:
                return
            decision = self.host.request_channel_restart(self.number, source="pipeline", reason=reason)
            if decision.accepted or self._restart_requested:
                self._restart_requested = False
                shown = False
                hidden, hide = hide and self.buffer_left() >= TAIL_HIDES_FAILURE, False
                if hidden:
                    # the failed process's media was not on air yet (it was reading ahead): the
                    # replacement may be ready before what is on air ends, and then no viewer ever
                    # sees the failure; the error screen follows only if the tail runs out first
                    sb = self._begin_standby(self.plan_program())
                    await self._until_ready_or_tail_ends(sb)
                else:  # planned for when it will air: after the error screen's minimum time on air
                    ahead = self.host.auto_heal.min_error_screen_seconds if fallback else 0.0
                    sb = self._begin_standby(self.plan_program(ahead=ahead))
                if not sb.done.is_set():
                    shown = fallback and await self._run_error_screen(reason, {}, until=sb)
                    if not shown:
                        await sb.done.wait()
                if sb.ready.is_set():
                    if shown:
                        self._cut_to_air()  # the programme replaces the error screen now
                    elif hidden:
                        self.host.events.emit("failure_hidden", f"channel {self.number}: the replacement was "
                                              "ready before the programme on air ended; viewers saw nothing",
                                              self.number)
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

    async def _until_ready_or_tail_ends(self, sb: "Standby") -> None:
        while not sb.done.is_set() and self.buffer_left() > TAIL_MARGIN and not self._halted():
            try:
                await asyncio.wait_for(sb.done.wait(), 0.1)
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
