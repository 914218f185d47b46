"""Routes Python logging (engine, uvicorn) into the console instead of the terminal behind Textual."""

from __future__ import annotations

import logging

from ..engine.observe.log_ring import LogRing, log_ring

ConsoleLogHandler = LogRing  # the console drains the process's log ring


def install(level: str = "info") -> LogRing:
    """Replace every root handler by the log ring (nothing may write to the terminal behind Textual)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    ring = log_ring()
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    return ring
