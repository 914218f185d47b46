"""What a channel airs next: the programme at the air time of the next frame, as a copy or an
encode (or from the normalised cache), refused with the capacity slate when the CPU has no room;
and the schedule's repairs at run time (a file skipped, a programme shorter than probed).

``Planning`` is the part of ``Channel`` that turns its schedule into segment plans (a mixin, as
``Recovery`` and ``SegmentRunner`` are).
"""

from __future__ import annotations

import logging
import os
import time

from ..ffmpeg.command import FileSource, copy_command, program_command
from ..ffmpeg.copy_policy import decide
from ..ffmpeg.stream_choice import choose_audio, choose_subtitles
from ..onair.schedule import Schedule
from .segment import SegmentOutcome, SegmentPlan


class Planning:
    """Programme planning of a channel (a mixin of ``Channel``)."""

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
        if slot.kind == "slate":  # a playout's gap that no filler fits: the channel's slate, then what is next
            nxt = self.schedule.at(slot.end + 1e-3)
            argv = self.host.error_screen_command(self, "slate", slot.remaining, {
                "title": nxt.item.title[:120] if nxt.kind != "slate" else self.name,
                "subtitle": f"at {time.strftime('%H:%M', time.localtime(slot.end))}", "visual_mode": "slate",
                "audio_mode": "silent"})
            return SegmentPlan("program", slot, argv or [], item.title)
        audio = choose_audio(item.streams, self.cfg.audio_languages)
        subs = choose_subtitles(item.streams, item.subtitle_files, self.cfg.subtitles) if item.has_video else None
        src = FileSource(item.path, slot.seek + slot.offset, slot.remaining, item.has_video, item.has_audio, item.cover,
                         audio, subs)
        profile = self.profile
        decision = decide(item, profile, audio, subs is not None, self.cfg.copy)
        if not decision.copy and subs is None and audio == 0 and profile == self.host.profile \
                and self.host.cache_applies(self, item):
            cached = self.host.cache.lookup(item, self.host.clock.time())
            if cached is not None:  # normalised once in the background: aired by copy
                src = FileSource(cached, slot.seek + slot.offset, slot.remaining)
                return SegmentPlan("program", slot, copy_command(self.host.ffmpeg_path, src), item.title,
                                   "copy (normalised cache)")
        if not decision.copy and not self._encode_admitted:
            if self.host.capacity.refuse_encode():  # no CPU headroom for another encode: viewers see why
                self.host.events.emit("capacity_refused", f"channel {self.number}: not started: the CPU has no room "
                                      f"for another encoding channel ({decision.reason})", self.number,
                                      level=logging.WARNING)
                argv = self.host.error_screen_command(self, "at capacity", 10.0, {
                    "title": "Server at capacity", "subtitle": "This channel starts as soon as there is room"})
                if argv:
                    return SegmentPlan("error_screen", None, argv, "Server at capacity")
            self._encode_admitted = True
        argv = copy_command(self.host.ffmpeg_path, src) if decision.copy else \
            program_command(self.host.ffmpeg_path, src, profile)
        return SegmentPlan("program", slot, argv, item.title, decision.reason)

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

    def file_problem(self, plan: SegmentPlan) -> str | None:
        """A cheap look before spawning: is the programme's file there and not empty?"""
        if plan.slot is not None and plan.slot.kind == "slate":
            return None
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
