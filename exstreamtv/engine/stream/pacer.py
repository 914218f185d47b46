"""Real-time pacing of a channel: spliced packets go to viewers at the speed of the clock.

The pacer anchors the channel timeline to the monotonic clock and releases each packet
when its timestamp is due, ``lead`` seconds early so players can fill a small buffer. FFmpeg
may encode ahead, but only ``readahead`` seconds: beyond that the channel stops reading its
stdout and the pipe's backpressure holds FFmpeg, so memory stays bounded and a program
change or restart always has seconds of already-encoded media to cover it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Callable

from .broadcaster import Broadcaster
from ..clock import Clock
from .mpegts import CLOCK, TS, ContinuityCounter, OutPacket, StreamEnd, track_end


class Pacer:
    LATE_REANCHOR = 2.0  # seconds behind the clock after which we stop trying to catch up

    def __init__(self, clock: Clock, broadcaster: Broadcaster, lead: float, tick: float = 0.1) -> None:
        self.clock = clock
        self.broadcaster = broadcaster
        self.lead = lead
        self.tick = tick
        self.pending: deque[OutPacket] = deque()
        self.anchor: tuple[float, int] | None = None  # (monotonic, media time in 90 kHz)
        self.released_time = 0  # media time (90 kHz) of the last released packet
        self.released_bytes = 0
        self.reanchors = 0
        self.cc = ContinuityCounter()
        self.released_ends: dict[int, StreamEnd] = {}  # per stream: where what was sent ends
        self.video_pid: int | None = None
        self.header_source: Callable[[], bytes] | None = None
        self.dropped_packets = 0
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self._closed = False

    # -- timeline
    def position(self) -> float | None:
        """Media time (90 kHz) that is on air now, or None before the first packet."""
        if self.anchor is None:
            return None
        mono, media = self.anchor
        return media + (self.clock.monotonic() - mono) * CLOCK

    def ahead_seconds(self) -> float:
        """How much encoded media waits beyond the release point."""
        if not self.pending:
            return 0.0
        pos = self.position()
        if pos is None:  # not anchored yet: the first packet will anchor at "now"
            pos = self.pending[0].time
        allowed = pos + self.lead * CLOCK
        return max(0.0, (self.pending[-1].time - allowed) / CLOCK)

    def air_time_of(self, media_time: int | None) -> float:
        """Wall-clock time at which ``media_time`` will be on air (now if unknown)."""
        pos = self.position()
        now = self.clock.time()
        if pos is None or media_time is None:
            return now
        return now + max(0.0, (media_time - pos) / CLOCK)

    # -- input
    def push(self, packets: list[OutPacket]) -> None:
        if packets:
            self.pending.extend(packets)
            self._data.set()

    async def wait_space(self, readahead: float, timeout: float = 1.0) -> None:
        """Return once less than ``readahead`` seconds are waiting (or after ``timeout``)."""
        if self.ahead_seconds() < readahead:
            return
        self._space.clear()
        try:
            await asyncio.wait_for(self._space.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    # -- output
    def release_due(self) -> float:
        """Publish every packet that is due; return seconds until the next one is (or the tick)."""
        if not self.pending:
            return self.tick
        now = self.clock.monotonic()
        first = self.pending[0].time
        if self.anchor is None:
            self.anchor = (now, first)
        pos = self.position()
        assert pos is not None
        if first < pos - self.LATE_REANCHOR * CLOCK or first > pos + (self.lead + 30) * CLOCK:
            self.anchor = (now, first)  # a gap (or a jump): continue from here, do not burst for ever
            self.reanchors += 1
            pos = float(first)
        allowed = pos + self.lead * CLOCK
        parts: list[bytes] = []
        chunk_header: bytes | None = None
        chunk_key = False
        chunk_time = 0
        pending = self.pending
        b = self.broadcaster
        stamp = self.cc.stamp
        ends = self.released_ends
        vid = self.video_pid
        while pending and pending[0].time <= allowed:
            pkt = pending.popleft()
            if pkt.keyframe and parts:
                self._publish(b, parts, chunk_key, chunk_time, chunk_header)
                parts = []
                chunk_header = None
            if not parts:
                chunk_key = pkt.keyframe
                chunk_time = pkt.time
                if chunk_key and self.header_source is not None:
                    # PAT/PMT for viewers who join here, numbered to run into this chunk's own
                    chunk_header = self.cc.stamp_as_last(self.header_source())
            stamp(pkt.data)
            if pkt.pes_start:
                track_end(ends, pkt, pkt.pid == vid)
            parts.append(pkt.data)
            self.released_time = pkt.time
        if parts:
            self._publish(b, parts, chunk_key, chunk_time, chunk_header)
        self._space.set()
        if not pending:
            return self.tick
        return min(self.tick, max(0.005, (pending[0].time - allowed) / CLOCK))

    def truncate(self, from_segment: int | None = None) -> int:
        """Drop what is not yet released (a failure or a switch): what comes next airs at once.

        ``from_segment``: drop only that splicer segment's output and later (a failed segment's
        own), so a failure of the next programme never cuts the tail of the one on air. The cut
        is at the first clean point still pending: when part of a group of pictures is already
        out, the rest of it (B-frames presented before a released P-frame) still goes, so no
        picture waits for frames that were cut away. The splicer must then ``rebase(kept_ends())``.
        """
        pending = self.pending
        n = len(pending)
        first = from_segment if from_segment is not None else -1
        cut = next((i for i, p in enumerate(pending) if p.segment >= first and p.clean), n)
        dropped = 0
        while len(pending) > cut:
            dropped += len(pending.pop().data) // TS
        self.dropped_packets += dropped
        self._space.set()
        return dropped

    def kept_ends(self) -> dict[int, StreamEnd]:
        """Per stream, where what was released or is still pending ends."""
        ends = {pid: StreamEnd(e.dts, e.end, e.dur, e.video) for pid, e in self.released_ends.items()}
        for pkt in self.pending:
            if pkt.pes_start:
                track_end(ends, pkt, pkt.pid == self.video_pid)
        return ends

    def _publish(self, b: Broadcaster, parts: list[bytes], key: bool, time: int, header: bytes | None) -> None:
        data = b"".join(parts)
        self.released_bytes += len(data)
        b.publish(data, key, time / CLOCK, header)

    async def run(self) -> None:
        while not self._closed:
            if not self.pending:
                self._data.clear()
                await self._data.wait()
                continue
            delay = self.release_due()
            await asyncio.sleep(delay)

    def close(self) -> None:
        self._closed = True
        self._data.set()
        self._space.set()
