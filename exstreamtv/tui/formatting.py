"""Small formatting helpers for the console (sizes, durations, colours by state)."""

from __future__ import annotations

import time

from rich.text import Text

STATUS_STYLE = {
    "healthy": "bold green", "degraded": "bold yellow", "unhealthy": "bold red", "failed": "bold white on red",
    "idle": "dim", "CLOSED": "green", "HALF_OPEN": "bold yellow", "OPEN": "bold white on red",
    "playing": "green", "starting": "cyan", "error_screen": "bold magenta", "recovering": "bold red",
    "unavailable": "red", "stopping": "dim", "active": "green", "created": "cyan", "error": "red",
    "disconnected": "dim",
}


def styled(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_rate(bps: float) -> str:
    if bps >= 1e6:
        return f"{bps / 1e6:.2f} Mb/s"
    if bps >= 1e3:
        return f"{bps / 1e3:.0f} kb/s"
    return f"{bps:.0f} b/s"


def human_duration(seconds: float) -> str:
    s = int(max(0, seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def clock(ts: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts)) if ts else "-"


def breaker_text(b: dict) -> Text:
    state = b.get("state", "CLOSED")
    t = styled(state)
    if state == "OPEN" and b.get("retry_after_seconds") is not None:
        t.append(f" {b['retry_after_seconds']:.0f}s")
    elif b.get("failures_in_window"):
        t.append(f" ({b['failures_in_window']})", style="yellow")
    return t


def progress_bar(fraction: float, width: int = 10) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = int(fraction * width)
    return "█" * full + "░" * (width - full)
