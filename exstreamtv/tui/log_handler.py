"""Routes Python logging (engine, uvicorn) into the console instead of the terminal behind Textual."""

from __future__ import annotations

import logging
from collections import deque


class ConsoleLogHandler(logging.Handler):
    """Keeps the latest records; the console's events panel drains them."""

    def __init__(self, capacity: int = 500) -> None:
        super().__init__()
        self.records: deque[tuple[float, str, str, str]] = deque(maxlen=capacity)
        self.seq = 0
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.records.append((record.created, record.levelname, record.name, self.format(record)))
            self.seq += 1
        except Exception:  # never raise from logging
            pass


def install(level: str = "info") -> ConsoleLogHandler:
    """Replace every root handler (nothing may write to the terminal behind Textual's back)."""
    handler = ConsoleLogHandler()
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return handler
