"""FFmpeg ``-progress`` output (key=value blocks ending in ``progress=``), parsed into numbers.

Read from the machine-readable progress stream rather than scraped log lines; every other
stderr line is kept in a bounded tail (the last ~25 KB) to show why a process died.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class ProgressSample:
    frame: int = 0
    fps: float = 0.0
    bitrate_kbps: float = 0.0
    total_size: int = 0
    out_time: float = 0.0
    dup_frames: int = 0
    drop_frames: int = 0
    speed: float = 0.0
    ended: bool = False


def _num(v: str) -> float:
    v = v.strip().rstrip("x")
    if v.endswith("kbits/s"):
        v = v[:-7]
    try:
        return float(v)
    except ValueError:
        return 0.0


class ProgressParser:
    """Feed stderr lines; returns a completed ProgressSample at each ``progress=`` line."""

    KEYS = {"frame", "fps", "bitrate", "total_size", "out_time_us", "out_time_ms", "out_time", "dup_frames",
            "drop_frames", "speed", "progress"}

    def __init__(self, tail_bytes: int = 25_000) -> None:
        self._cur = ProgressSample()
        self.tail: deque[str] = deque()
        self._tail_size = 0
        self._tail_max = tail_bytes

    def feed_line(self, line: str) -> ProgressSample | None:
        key, sep, value = line.partition("=")
        key = key.strip()
        if sep and (key in self.KEYS or key.startswith("stream_")):
            c = self._cur
            if key == "frame":
                c.frame = int(_num(value))
            elif key == "fps":
                c.fps = _num(value)
            elif key == "bitrate":
                c.bitrate_kbps = _num(value)
            elif key == "total_size":
                c.total_size = int(_num(value))
            elif key == "out_time_us":
                c.out_time = _num(value) / 1e6
            elif key == "dup_frames":
                c.dup_frames = int(_num(value))
            elif key == "drop_frames":
                c.drop_frames = int(_num(value))
            elif key == "speed":
                c.speed = _num(value)
            elif key == "progress":
                c.ended = value.strip() == "end"
                done, self._cur = c, ProgressSample()
                return done
            return None
        self._keep(line)
        return None

    def _keep(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        self.tail.append(line)
        self._tail_size += len(line) + 1
        while self._tail_size > self._tail_max and self.tail:
            self._tail_size -= len(self.tail.popleft()) + 1

    def last_error(self) -> str:
        return self.tail[-1] if self.tail else ""

    def tail_text(self) -> str:
        return "\n".join(self.tail)
