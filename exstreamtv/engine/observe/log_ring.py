"""The process's latest log lines, kept in memory for consoles (embedded or attached).

One ring per process, attached to the root logger: the embedded console drains it
directly; the HTTP server streams it to attached consoles (``/api/console/stream``), each
line with a sequence number so a reconnecting console resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections import deque


class LogRing(logging.Handler):
    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: deque[tuple[float, str, str, str]] = deque(maxlen=capacity)  # created, level, logger, text
        self.seq = 0  # sequence number of the latest record
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((record.created, record.levelname, record.name, self.format(record)))
            self.seq += 1
        except Exception:  # never raise from logging
            pass

    def since(self, seq: int) -> list[tuple[int, float, str, str, str]]:
        """(seq, created, level, logger, text) of the records after ``seq`` still kept."""
        records = list(self.records)
        first = self.seq - len(records) + 1
        return [(first + i, *r) for i, r in enumerate(records) if first + i > seq]


_ring: LogRing | None = None


def log_ring() -> LogRing:
    """The process's ring, attached to the root logger on first use."""
    global _ring
    if _ring is None:
        _ring = LogRing()
    root = logging.getLogger()
    if _ring not in root.handlers:
        root.addHandler(_ring)
    return _ring
