"""Continuity of a captured stream, read from its packets as a player reads them.

Used by the tests and ``bench/continuity.py`` to check the splicer's promises on what a
viewer really received: sound that neither stops nor doubles (each AAC frame starts where
the previous one ended), pictures whose presentation times rise by one frame at a time,
decode times that only go forward, a PCR that never steps back and continuity counters
that never skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import aac
from .mpegts import (CLOCK, HALF, PTS_MOD, SYNC, TS, VIDEO_STREAM_TYPES, parse_header, parse_pat, parse_pmt,
                     pes_timestamps, read_pcr)


class _Unwrap:
    def __init__(self) -> None:
        self.ref: tuple[int, int] | None = None

    def __call__(self, raw: int) -> int:
        if self.ref is None:
            u = raw
        else:
            d = (raw - self.ref[0]) % PTS_MOD
            u = self.ref[1] + (d - PTS_MOD if d >= HALF else d)
        self.ref = (raw, u)
        return u


@dataclass
class Glitch:
    at: float  # seconds on the capture's timeline
    size: float  # seconds (audio: + gap / - overlap; video: the step; pcr: the jump)


@dataclass
class ContinuityReport:
    audio_frames: int = 0  # PES (one or more AAC frames each)
    video_frames: int = 0
    audio_gaps: list[Glitch] = field(default_factory=list)  # holes between consecutive audio frames
    audio_overlaps: list[Glitch] = field(default_factory=list)
    video_steps: list[Glitch] = field(default_factory=list)  # presentation steps above 1.5 frames
    video_frame: float = 0.0  # the usual presentation step (one frame)
    video_not_increasing: int = 0  # presentation times repeated
    dts_backwards: int = 0
    pcr_backwards: list[Glitch] = field(default_factory=list)
    pcr_max_jump: float = 0.0
    cc_errors: int = 0
    sync_errors: int = 0

    @property
    def max_audio_gap(self) -> float:
        return max((g.size for g in self.audio_gaps), default=0.0)

    @property
    def max_audio_overlap(self) -> float:
        return max((-g.size for g in self.audio_overlaps), default=0.0)

    @property
    def max_video_step(self) -> float:
        return max((g.size for g in self.video_steps), default=self.video_frame)

    def summary(self) -> dict[str, float | int]:
        return {"audio_pes": self.audio_frames, "video_frames": self.video_frames,
                "max_audio_gap_ms": round(self.max_audio_gap * 1000, 1),
                "max_audio_overlap_ms": round(self.max_audio_overlap * 1000, 1),
                "audio_glitches": len(self.audio_gaps) + len(self.audio_overlaps),
                "max_video_step_frames": round(self.max_video_step / self.video_frame, 2) if self.video_frame else 0,
                "video_not_increasing": self.video_not_increasing, "dts_backwards": self.dts_backwards,
                "pcr_backwards": len(self.pcr_backwards), "pcr_max_jump_s": round(self.pcr_max_jump, 3),
                "cc_errors": self.cc_errors}


def continuity_report(data: bytes, tolerance: float = 0.001) -> ContinuityReport:
    """Read a capture; audio glitches smaller than ``tolerance`` seconds are rounding, not holes."""
    rep = ContinuityReport()
    i = data.find(bytes([SYNC]))
    pmt_pid = video = None
    audio: set[int] = set()
    cc: dict[int, int] = {}
    unwrap: dict[int, _Unwrap] = {}
    pcr_unwrap = _Unwrap()
    audio_open: dict[int, tuple[int, bytearray]] = {}  # pid -> (pts, payload so far)
    audio_frames: dict[int, list[tuple[int, int]]] = {}  # pid -> [(pts, duration)]
    vpts: list[int] = []
    last_dts: int | None = None
    last_pcr: int | None = None

    def close_audio(pid: int) -> None:
        if pid in audio_open:
            pts, payload = audio_open.pop(pid)
            counted = aac.count_samples(payload)
            if counted:
                audio_frames.setdefault(pid, []).append((pts, counted[0] * CLOCK // counted[1]))

    while 0 <= i and i + TS <= len(data):
        p = data[i:i + TS]
        if p[0] != SYNC:
            rep.sync_errors += 1
            i = data.find(bytes([SYNC]), i + 1)
            continue
        info = parse_header(p)
        pid = info.pid
        if info.has_payload and pid != 0x1FFF:
            last = cc.get(pid)
            cur = p[3] & 0x0F
            if last is not None and cur != (last + 1) & 0x0F:
                rep.cc_errors += 1
            cc[pid] = cur
        if info.pcr_at >= 0:
            pcr = pcr_unwrap(read_pcr(p, info.pcr_at))
            if last_pcr is not None:
                if pcr < last_pcr:
                    rep.pcr_backwards.append(Glitch(pcr / CLOCK, (pcr - last_pcr) / CLOCK))
                rep.pcr_max_jump = max(rep.pcr_max_jump, (pcr - last_pcr) / CLOCK)
            last_pcr = pcr
        if pid == 0 and info.has_payload:
            pmt_pid = parse_pat(p, info) or pmt_pid
        elif pid == pmt_pid and info.pusi:
            for st, es in parse_pmt(p, info):
                if st in VIDEO_STREAM_TYPES:
                    video = es
                else:
                    audio.add(es)
        elif pid in audio and info.has_payload:
            if info.pusi:
                close_audio(pid)
                pts, _, _, _ = pes_timestamps(p, info.payload_start)
                if pts is not None:
                    start = info.payload_start + 9 + p[info.payload_start + 8]
                    audio_open[pid] = (unwrap.setdefault(pid, _Unwrap())(pts), bytearray(p[start:]))
            elif pid in audio_open:
                audio_open[pid][1].extend(p[info.payload_start:])
        elif pid == video and info.pusi:
            pts, dts, _, _ = pes_timestamps(p, info.payload_start)
            if pts is not None:
                u = unwrap.setdefault(pid, _Unwrap())
                if dts is not None:
                    ud = u(dts)
                    d = (pts - dts) % PTS_MOD
                    up = ud + (d - PTS_MOD if d >= HALF else d)
                else:
                    ud = up = u(pts)
                if last_dts is not None and ud <= last_dts:
                    rep.dts_backwards += 1
                last_dts = ud
                vpts.append(up)
        i += TS
    for pid in list(audio_open):
        close_audio(pid)
    tol = tolerance * CLOCK
    for frames in audio_frames.values():
        rep.audio_frames += len(frames)
        for (a, da), (b, _) in zip(frames, frames[1:]):
            d = b - (a + da)
            if d > tol:
                rep.audio_gaps.append(Glitch(b / CLOCK, d / CLOCK))
            elif d < -tol:
                rep.audio_overlaps.append(Glitch(b / CLOCK, d / CLOCK))
    rep.video_frames = len(vpts)
    # a capture ends mid group of pictures: frames presented after the last decode time may still
    # have been on their way, so only presentation up to there is judged
    vpts = sorted(t for t in vpts if last_dts is None or t <= last_dts)
    steps = [b - a for a, b in zip(vpts, vpts[1:])]
    positive = sorted(s for s in steps if s > 0)
    frame = positive[len(positive) // 2] if positive else 0
    rep.video_frame = frame / CLOCK
    for a, s in zip(vpts, steps):
        if s <= 0:
            rep.video_not_increasing += 1
        elif frame and s > frame * 1.5:
            rep.video_steps.append(Glitch((a + s) / CLOCK, s / CLOCK))
    return rep
