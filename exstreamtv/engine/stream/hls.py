"""Live HLS cut from the channel's one stream: no second encode, one timeline.

The segmenter listens to the channel's broadcaster (the same paced, spliced packets the
MPEG-TS viewers get) and closes a segment at a keyframe chunk once it is long enough.
Every segment begins with the PAT/PMT numbered for its first chunk and a keyframe, so each
is decodable on its own; the splicer already keeps timestamps continuous across programme
changes, failures and error screens, so the playlist never needs ``EXT-X-DISCONTINUITY``.

Segment numbers start from the wall clock (four per second), so a channel that stops and
starts again never reuses the number of a segment a shared cache may still hold.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from .broadcaster import Chunk

MIN_SEGMENT = 0.25  # seconds: a shorter run before a keyframe joins the next segment
PDT_RESYNC = 1.0  # seconds of drift between the chained and the measured wall time before re-syncing


@dataclass(slots=True)
class Segment:
    seq: int
    start: float  # channel media time, seconds
    duration: float
    program_date_time: float  # wall-clock time at which its first frame airs
    parts: list[bytes] = field(repr=False)
    _data: bytes | None = field(default=None, repr=False)

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = b"".join(self.parts)
            self.parts = []
        return self._data

    @property
    def size(self) -> int:
        return len(self._data) if self._data is not None else sum(len(p) for p in self.parts)


class Segmenter:
    def __init__(self, target: float, window: int, keyframe_interval: float, wall_of: Callable[[float], float],
                 first_seq: int, keep_extra: int = 4) -> None:
        self.target = target
        self.window = window
        self.keyframe_interval = keyframe_interval
        self.wall_of = wall_of
        self.next_seq = first_seq
        self.keep = window + keep_extra  # older segments stay fetchable a little after leaving the playlist
        # a segment never exceeds the target unless one GOP already does
        self.target_duration = max(1, math.ceil(max(target, keyframe_interval) - 1e-6))
        self.segments: deque[Segment] = deque()
        self._open_start: float | None = None
        self._open_parts: list[bytes] = []
        self._last_key: float | None = None
        self._gop = keyframe_interval
        self._waiters: list[asyncio.Future] = []
        self.closed = False
        self.total_segments = 0

    # -- producer side (a broadcaster listener)
    def on_chunk(self, chunk: Chunk) -> None:
        if self.closed:
            return
        if chunk.keyframe:
            t = chunk.media_time
            if self._last_key is not None and 0 < t - self._last_key:
                self._gop = t - self._last_key
            self._last_key = t
            if self._open_start is not None:
                length = t - self._open_start
                if length < 0:  # the timeline went back (never expected): start afresh
                    self._open_parts = []
                    self._open_start = None
                elif length >= MIN_SEGMENT and (length >= self.target - 0.05
                                                or length + self._gop > self.target + 0.05):
                    self._close(t)
            if self._open_start is None:
                self._open_start = t
                self._open_parts = [chunk.header] if chunk.header else []
            self._open_parts.append(chunk.data)
        elif self._open_start is not None:
            self._open_parts.append(chunk.data)
        # chunks before the first keyframe cannot start a segment: dropped

    def _close(self, end: float) -> None:
        start = self._open_start
        assert start is not None
        duration = end - start
        measured = self.wall_of(start)
        if self.segments:
            prev = self.segments[-1]
            chained = prev.program_date_time + prev.duration
            pdt = chained if abs(chained - measured) < PDT_RESYNC else measured
        else:
            pdt = measured
        self.segments.append(Segment(self.next_seq, start, duration, pdt, self._open_parts))
        self.next_seq += 1
        self.total_segments += 1
        self._open_parts = []
        self._open_start = None
        while len(self.segments) > self.keep:
            self.segments.popleft()
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._wake()

    # -- consumer side
    def get(self, seq: int) -> Segment | None:
        if not self.segments:
            return None
        idx = seq - self.segments[0].seq
        if 0 <= idx < len(self.segments):
            return self.segments[idx]
        return None

    def listed(self) -> list[Segment]:
        return list(self.segments)[-self.window:]

    async def wait_ready(self, timeout: float) -> bool:
        """True once at least one segment is listed (False on timeout or when the channel stopped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.segments and not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                return False
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(asyncio.shield(fut), left)
            except asyncio.TimeoutError:
                return False
        return bool(self.segments)

    def playlist(self, segment_uri: Callable[[int], str]) -> str:
        """The live media playlist over the sliding window (RFC 8216)."""
        listed = self.listed()
        target = max([self.target_duration] + [math.ceil(s.duration - 1e-6) for s in listed])
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{listed[0].seq if listed else self.next_seq}"]
        for s in listed:
            lines.append("#EXT-X-PROGRAM-DATE-TIME:" + iso_time(s.program_date_time))
            lines.append(f"#EXTINF:{s.duration:.3f},")
            lines.append(segment_uri(s.seq))
        return "\n".join(lines) + "\n"

    def snapshot(self) -> dict:
        return {"segments": len(self.segments), "next_seq": self.next_seq, "target_duration": self.target_duration,
                "total_segments": self.total_segments,
                "buffered_seconds": round(sum(s.duration for s in self.segments), 3)}


def iso_time(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def first_sequence(wall_now: float) -> int:
    """Four numbers a second from the epoch: above any number an earlier run of the channel used."""
    return int(wall_now * 4)
