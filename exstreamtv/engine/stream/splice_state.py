"""The splicer's bookkeeping: which video frames have arrived and been released (a frontier of
presentation times), the PES being collected per stream, the queue of packets waiting for their
PES to complete, and everything one segment (one FFmpeg's output) needs while it is spliced in."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

MAX_REORDER = 8  # video frames that may wait for an earlier-presented frame before we stop waiting


class Frontier:
    """Presentation times seen so far: ``value`` is the latest time up to which none is missing."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.ahead: list[int] = []

    def add(self, pts: int, dur: int) -> None:
        if self.value is None:
            self.value = pts
            return
        if pts <= self.value:
            return
        bisect.insort(self.ahead, pts)
        step = dur + dur // 2 if dur > 0 else 0
        while self.ahead and (self.ahead[0] <= self.value + step or len(self.ahead) > MAX_REORDER):
            self.value = max(self.value, self.ahead.pop(0))

    @property
    def whole(self) -> bool:
        return not self.ahead


@dataclass(slots=True)
class Pes:
    pid: int
    complete: bool = False
    drop: bool = False
    time: int = 0  # output DTS (the pacing time)
    pts: int = -1
    dur: int = 0
    frame: int = 0
    video: bool = False
    payload: bytearray | None = None  # audio: collected to count its frames
    trim: bool = False  # audio overlapping what was sent: its leading frames are cut when complete


@dataclass(slots=True)
class Queued:
    data: bytearray
    time: int
    keyframe: bool
    pes: Pes | None
    first: bool  # the PES's first packet


@dataclass
class SegmentState:
    rest: bytes = b""
    offset: int | None = None
    prebuffer: list[bytearray] = field(default_factory=list)
    first_ts: dict[int, int] = field(default_factory=dict)  # raw first DTS per PID
    first_pts: dict[int, int] = field(default_factory=dict)  # raw first PTS per PID
    unwrap_ref: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (raw, unwrapped)
    open_pes: dict[int, Pes] = field(default_factory=dict)
    queue: list[Queued] = field(default_factory=list)
    cur_time: int | None = None  # output time of the latest packet (PSI packets inherit it)
    arrived: Frontier = field(default_factory=Frontier)  # video frames received
    released: Frontier = field(default_factory=Frontier)  # video frames handed on
    video_floor: int | None = None  # presentation time of the first keyframe
    video_dts: int | None = None
    video_dur: int = 0
    audio_drop: dict[int, int] = field(default_factory=dict)  # leading audio frames to drop (overlap)
    audio_shift: dict[int, int] = field(default_factory=dict)  # audio moved by under half a frame
    bytes_in: int = 0
    sync_losses: int = 0
    dropped_frames: int = 0
