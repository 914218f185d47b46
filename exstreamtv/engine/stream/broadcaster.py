"""Fan-out of one channel's stream to all its viewers.

One shared, bounded ring of chunks per channel and one cursor per viewer (never one
shared blocking pipe): a viewer that reads slowly only moves its own cursor, and one
that falls out of the ring skips ahead to the newest keyframe (counted and logged), so
it can neither hold back the others nor grow memory. Chunks begin at keyframes where
the stream has one, so a new viewer starts at the latest keyframe (a GOP cache) and
decodes from its first byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

log = logging.getLogger("exstreamtv.fanout")


@dataclass(slots=True)
class Chunk:
    seq: int
    data: bytes
    keyframe: bool
    media_time: float  # seconds on the channel timeline of the chunk's first packet
    header: bytes = b""  # key chunks: PAT/PMT numbered to run into this chunk (what a viewer starting here gets)


@dataclass
class Cursor:
    seq: int
    needs_header: bool = True
    wait_keyframe: bool = False
    skips: int = 0
    skipped_bytes: int = 0
    closed: bool = False


class Broadcaster:
    def __init__(self, max_seconds: float = 10.0, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_seconds = max_seconds
        self.max_bytes = max_bytes
        self._chunks: deque[Chunk] = deque()
        self._bytes = 0
        self.next_seq = 0
        self.header = b""
        self.total_bytes = 0
        self.closed = False
        self._waiter: asyncio.Future | None = None
        self._last_key_seq: int | None = None
        self.listeners: list = []  # callables given every published Chunk (the HLS segmenter)

    # -- producer side
    def publish(self, data: bytes, keyframe: bool, media_time: float, header: bytes | None = None) -> None:
        """``header``: for a key chunk, the PAT/PMT a viewer starting at it needs first."""
        if not data or self.closed:
            return
        if header is not None:
            self.header = header
        chunk = Chunk(self.next_seq, data, keyframe, media_time, self.header if keyframe else b"")
        self.next_seq += 1
        self._chunks.append(chunk)
        self._bytes += len(data)
        self.total_bytes += len(data)
        if keyframe:
            self._last_key_seq = chunk.seq
        for listener in self.listeners:
            listener(chunk)
        self._trim()
        self._wake()

    def _trim(self) -> None:
        newest = self._chunks[-1].media_time
        keep_from = self._last_key_seq if self._last_key_seq is not None else self._chunks[-1].seq
        while self._chunks and self._chunks[0].seq < keep_from and (
                newest - self._chunks[0].media_time > self.max_seconds or self._bytes > self.max_bytes):
            self._bytes -= len(self._chunks.popleft().data)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    def close(self) -> None:
        self.closed = True
        self._wake()

    def detach(self, cursor: Cursor) -> None:
        """End one viewer's reads (kick, idle timeout): its pending ``read`` returns b''."""
        cursor.closed = True
        self._wake()

    # -- consumer side
    @property
    def first_seq(self) -> int:
        return self._chunks[0].seq if self._chunks else self.next_seq

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    @property
    def buffered_seconds(self) -> float:
        return self._chunks[-1].media_time - self._chunks[0].media_time if self._chunks else 0.0

    def subscribe(self) -> Cursor:
        """A new viewer starts at the latest keyframe still buffered (or waits for the next one)."""
        if self._last_key_seq is not None and self._last_key_seq >= self.first_seq:
            return Cursor(self._last_key_seq)
        return Cursor(self.next_seq, wait_keyframe=True)

    def lag_seconds(self, cursor: Cursor) -> float:
        if not self._chunks or cursor.seq >= self.next_seq:
            return 0.0
        idx = max(0, cursor.seq - self.first_seq)
        return self._chunks[-1].media_time - self._chunks[idx].media_time

    def _skip_ahead(self, cursor: Cursor, why: str) -> None:
        target = self._last_key_seq if self._last_key_seq is not None and self._last_key_seq >= self.first_seq \
            else self.next_seq
        skipped = sum(len(c.data) for c in self._chunks if cursor.seq <= c.seq < target)
        cursor.skips += 1
        cursor.skipped_bytes += skipped
        cursor.seq = target
        cursor.wait_keyframe = target == self.next_seq
        log.info("viewer fell behind (%s): skipped ahead %d bytes to the newest keyframe", why, skipped)

    def available(self, cursor: Cursor, limit: int = 1 << 20) -> bytes:
        """Whatever the cursor may take now (b'' if nothing), advancing it."""
        if cursor.seq < self.first_seq:
            self._skip_ahead(cursor, "left the buffer")
        if cursor.wait_keyframe:
            while cursor.seq < self.next_seq:
                c = self._chunks[cursor.seq - self.first_seq]
                if c.keyframe:
                    cursor.wait_keyframe = False
                    break
                cursor.seq += 1
            if cursor.wait_keyframe:
                return b""
        if cursor.seq >= self.next_seq:
            return b""
        parts = []
        if cursor.needs_header:
            first = self._chunks[cursor.seq - self.first_seq]
            parts.append(first.header or self.header)  # the header numbered for where it starts
            cursor.needs_header = False
        size = 0
        idx = cursor.seq - self.first_seq
        chunks = self._chunks
        n = len(chunks)
        while idx < n and size < limit:
            data = chunks[idx].data
            parts.append(data)
            size += len(data)
            idx += 1
        cursor.seq = self.first_seq + idx
        return b"".join(parts)

    async def read(self, cursor: Cursor, limit: int = 1 << 20) -> bytes:
        """Next bytes for this viewer; b'' once the broadcaster (or the cursor) is closed."""
        while True:
            if self.closed or cursor.closed:
                return b""
            data = self.available(cursor, limit)
            if data:
                return data
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)
