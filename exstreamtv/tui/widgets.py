"""The console's panels. Each renders one part of an ``EngineSnapshot``; none talks to the engine."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widgets import RichLog, Sparkline, Static

from ..engine.control import EngineSnapshot
from ..engine.pipeline.error_screens import PreviewImage
from .formatting import (breaker_text, clock, human_bytes, human_duration, human_rate, progress_bar,
                         styled)
from .table import Column, VirtualTable, plain


class KeyedTable(VirtualTable):
    """A table of keyed rows with a filter and a sort order (applied here or, when paged, by the source)."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.filter_text = ""
        self.sort_index = 0
        self.sort_reverse = False

    @property
    def sort_key(self) -> str:
        return self.COLUMNS[self.sort_index].key

    def cycle_sort(self) -> str:
        if self.sort_reverse:
            self.sort_index = (self.sort_index + 1) % len(self.COLUMNS)
        self.sort_reverse = not self.sort_reverse
        return f"{self.COLUMNS[self.sort_index].label} {'↓' if self.sort_reverse else '↑'}"

    def show(self, rows: dict[str, tuple]) -> None:
        """All rows given: filter and sort here (for small tables such as channels)."""
        if self.filter_text:
            f = self.filter_text.lower()
            rows = {k: v for k, v in rows.items() if any(f in plain(c).lower() for c in v)}
        i = self.sort_index
        ordered = sorted(rows.items(), key=lambda kv: _sortable(plain(kv[1][i])), reverse=self.sort_reverse)
        self.set_rows(ordered)


def _sortable(v: str) -> tuple:
    try:
        return (0, float(v.split()[0].replace(":", "")), v)
    except (ValueError, IndexError):
        return (1, 0.0, v)


class ChannelsTable(KeyedTable):
    BORDER_TITLE = "Channels"
    COLUMNS = (Column("n", "#", 3), Column("name", "Name", 14, flex=True), Column("state", "State", 12),
               Column("health", "Health", 9), Column("viewers", "Viewers", 7),
               Column("now", "Now playing", 14, flex=True), Column("breaker", "Breaker", 11),
               Column("prog", "Progress", 8), Column("fps", "FPS", 3), Column("speed", "Speed", 6),
               Column("kbps", "kb/s", 5))

    def get_content_height(self, container, viewport, width: int) -> int:
        return self.total + 1

    def update_from(self, snap: EngineSnapshot) -> None:
        rows = {}
        now = snap.now or time.time()
        for ch in snap.channels:
            n = str(ch["number"])
            np = ch.get("on_air") if ch.get("state") == "error_screen" else ch.get("now_playing")
            title = (np or {}).get("title") or "-"
            start, end = (np or {}).get("start"), (np or {}).get("end")
            frac = (now - start) / (end - start) if start and end and end > start else 0.0
            ff = ch.get("ffmpeg", {})
            running = ch.get("pid") is not None
            health = snap.health.get(n, {}).get("status", "idle")
            rows[n] = (n, str(ch["name"]), styled(ch["state"]), styled(health), str(ch.get("viewers", 0)),
                       str(title), breaker_text(snap.breakers.get(n, ch.get("breaker", {}))), progress_bar(frac, 8) if np and ch.get("state") != "error_screen" else "",
                       f"{ff.get('fps', 0):.0f}" if running else "-",
                       f"{ff.get('speed', 0):.2f}x" if running else "-",
                       f"{ff.get('bitrate_kbps', 0):.0f}" if running else "-")
        self.show(rows)


class SessionsTable(KeyedTable):
    """Live sessions, paged: the engine sorts and filters, and hands over only the rows in view."""

    BORDER_TITLE = "Sessions"
    COLUMNS = (Column("client", "Client", 16, flex=True), Column("ch", "Ch", 3), Column("state", "State", 12),
               Column("dur", "Time", 7), Column("bytes", "Sent", 8), Column("rate", "Rate", 10))

    def page_request(self) -> tuple[int, int]:
        """(offset, limit) of the live sessions to ask the engine for."""
        limit = self.page_size() + 8
        return max(0, int(self.scroll_y) - 4), limit

    def update_from(self, snap: EngineSnapshot) -> None:
        live_total = snap.sessions_total if snap.sessions_total is not None else len(snap.sessions)
        offset = snap.sessions_offset
        rows: list[tuple[str, tuple]] = []
        for s in snap.sessions:
            rows.append((s["session_id"], (str(s["client_addr"]), str(s["channel_id"]), styled(s["state"]),
                                           human_duration(s["duration_seconds"]), human_bytes(s["bytes_sent"]),
                                           human_rate(s["current_rate_bps"]))))
        gone = snap.recent_disconnects[:5]  # who left lately, and why (after the live rows)
        if offset + len(rows) >= live_total:
            for s in gone:
                rows.append(("x" + s["session_id"], (Text(str(s["client_addr"]), style="dim"), str(s["channel_id"]),
                                                     styled("disconnected"), human_duration(s["duration_seconds"]),
                                                     human_bytes(s["bytes_sent"]),
                                                     Text(str(s.get("disconnect_reason") or ""), style="dim"))))
        self.border_subtitle = f"{live_total} live"
        self.set_rows(rows, live_total + len(gone), offset)

    def selected_key(self) -> str | None:
        key = super().selected_key()
        return None if key is None or key.startswith("x") else key


class PoolPanel(Static):
    BORDER_TITLE = "Process pool"

    def update_from(self, snap: EngineSnapshot) -> None:
        p = snap.pool
        cap = max(1, p["capacity"])
        mem, limit = p["memory_percent"], p.get("memory_limit_percent", 85)
        free_fd = p["fd_limit"] - p["fd_used"]
        reserve = p.get("fd_reserve", 100)
        t = Text()
        t.append(f"FFmpeg {p['running']}/{p['capacity']} ", style="bold")
        t.append(progress_bar(p["running"] / cap, 8), style="green" if p["running"] < cap else "red")
        t.append(f" {p['capacity_reason']}\n", style="dim")
        t.append(f"Memory {mem:.0f}% ", style="bold")
        t.append(progress_bar(mem / 100, 8), style="red" if mem >= limit else "green")
        t.append(f" <{limit:g}%\n", style="dim")
        t.append(f"FDs {p['fd_used']}/{p['fd_limit']} ", style="bold")
        t.append(f"free {free_fd}\n", style="red" if free_fd < reserve else "dim")
        t.append(f"tokens {p['spawn_tokens']:.1f} ", style="bold")
        t.append(f"rejected {p['rejected_spawns']} ", style="red" if p["rejected_spawns"] else "dim")
        t.append(f"zombies {p['zombies_reaped']}", style="dim")
        est = p.get("capacity_estimate")
        if est:
            t.append(f"\nfits +{est['more_encoding_channels']} encode / +{est['more_copying_channels']} copy ",
                     style="bold")
            t.append(f"(CPU {est['cpu_percent']:.0f}%, {est['encode_cpu_percent']:.0f}%/enc, "
                     f"{est['copy_cpu_percent']:.1f}%/copy)", style="dim")
        cache = p.get("cache")
        if cache and (cache["items"] or cache["queued"]):
            rate = f"{cache['hit_rate'] * 100:.0f}%" if cache["hit_rate"] is not None else "-"
            t.append(f"\ncache {cache['items']} done, {cache['queued']} queued, {cache['bytes'] >> 20} MiB, "
                     f"hits {rate}" + (" (paused)" if cache["paused"] else ""), style="dim")
        self.update(t)


class HealthPanel(Vertical):
    BORDER_TITLE = "Health"

    def compose(self):
        yield Static(id="health-title")
        for key in ("fps", "speed", "kbps"):
            with Horizontal(classes="spark-row"):
                yield Static(key, classes="spark-label")
                yield Sparkline([], id=f"spark-{key}")

    def update_from(self, snap: EngineSnapshot, channel: str | None) -> None:
        rep = snap.health.get(channel or "", {})
        title = self.query_one("#health-title", Static)
        if not rep:
            title.update("select a channel")
            return
        hist = rep.get("history", [])
        t = Text(f"ch {channel} ", style="bold")
        t.append_text(styled(rep["status"]))
        t.append(f"  drops {rep.get('dropped_frames', 0)}  lag {rep.get('lag_seconds', 0):.1f}s", style="dim")
        if rep.get("transcode"):
            t.append(f"  {rep['transcode']}", style="green" if rep["transcode"] == "copy" else "dim")
        if rep.get("reasons"):
            t.append("  " + "; ".join(rep["reasons"])[:60], style="yellow")
        title.update(t)
        self.query_one("#spark-fps", Sparkline).data = [h["fps"] for h in hist]
        self.query_one("#spark-speed", Sparkline).data = [h["speed"] for h in hist]
        self.query_one("#spark-kbps", Sparkline).data = [h["bitrate_kbps"] for h in hist]


EVENT_STYLE = {"restart_refused": "yellow", "restart_accepted": "cyan", "breaker_transition": "magenta",
               "spawn_rejected": "red", "pipeline_failed": "red", "session_started": "green", "session_ended": "dim",
               "error_screen": "magenta", "hot_swap": "cyan", "auto_heal": "yellow"}


class EventsLog(RichLog):
    BORDER_TITLE = "Events and log"

    def __init__(self, **kw: Any) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, **kw)
        self.last_event_id = 0
        self.last_log_seq = 0

    def add_events(self, events: list[dict[str, Any]]) -> None:
        for ev in events:
            if ev["id"] <= self.last_event_id:
                continue
            self.last_event_id = ev["id"]
            t = Text(clock(ev["timestamp"]) + " ", style="dim")
            t.append(ev["message"], style=EVENT_STYLE.get(ev["kind"], ""))
            self.write(t)

    def add_log(self, records, seq: int) -> None:
        new = seq - self.last_log_seq
        if new <= 0:
            return
        for created, level, name, msg in list(records)[-min(new, len(records)):]:
            if name == "exstreamtv.events":
                continue  # already shown as an event
            t = Text(clock(created) + " ", style="dim")
            t.append(f"{level.lower()} {name.split('.')[-1]}: ", style="red" if level in ("ERROR", "WARNING")
                     else "dim")
            t.append(msg)
            self.write(t)
        self.last_log_seq = seq


class PreviewImageWidget(Static):
    """A frame drawn with half blocks: each cell shows two pixels (top = foreground, bottom = background)."""

    def show_image(self, img: PreviewImage) -> None:
        text = Text()
        for y in range(0, img.height - 1, 2):
            for x in range(img.width):
                top, bottom = img.pixel(x, y), img.pixel(x, y + 1)
                text.append("▀", style=f"rgb({top[0]},{top[1]},{top[2]}) on rgb({bottom[0]},{bottom[1]},{bottom[2]})")
            if y + 2 < img.height - 1:
                text.append("\n")
        self.update(text)
