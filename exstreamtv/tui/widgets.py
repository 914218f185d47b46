"""The console's panels. Each renders one part of an ``EngineSnapshot``; none talks to the engine."""

from __future__ import annotations

import time
from typing import Any, Callable

from rich.text import Text
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, RichLog, Sparkline, Static

from ..engine.control import EngineSnapshot
from ..engine.error_screens import PreviewImage
from .formatting import (breaker_text, clock, human_bytes, human_duration, human_rate, progress_bar,
                         styled)


class KeyedTable(DataTable):
    """A DataTable updated in place from keyed rows (no clear-and-refill: no flicker, cursor kept)."""

    COLUMNS: tuple[tuple[str, str], ...] = ()
    can_focus = True

    def __init__(self, **kw: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kw)
        self.filter_text = ""
        self.sort_index = 0
        self.sort_reverse = False
        self._rows: dict[str, tuple] = {}

    def on_mount(self) -> None:
        for key, label in self.COLUMNS:
            self.add_column(label, key=key)

    def sort_keys(self) -> list[Callable[[tuple], Any]]:
        return [lambda r, i=i: _plain(r[i]) for i in range(len(self.COLUMNS))]

    def cycle_sort(self) -> str:
        if self.sort_reverse:
            self.sort_index = (self.sort_index + 1) % len(self.COLUMNS)
        self.sort_reverse = not self.sort_reverse
        return f"{self.COLUMNS[self.sort_index][1]} {'↓' if self.sort_reverse else '↑'}"

    def show(self, rows: dict[str, tuple]) -> None:
        if self.filter_text:
            f = self.filter_text.lower()
            rows = {k: v for k, v in rows.items() if any(f in _plain(c).lower() for c in v)}
        keyfn = self.sort_keys()[self.sort_index]
        ordered = sorted(rows.items(), key=lambda kv: _sortable(keyfn(kv[1])), reverse=self.sort_reverse)
        order = [k for k, _ in ordered]
        if order != [str(k.value) for k in self.rows] or set(rows) != set(self._rows):
            selected = self.selected_key()
            self.clear()
            for k, v in ordered:
                self.add_row(*v, key=k)
            if selected in rows:
                self.move_cursor(row=order.index(selected), scroll=False)
        else:
            cols = [c for c, _ in self.COLUMNS]
            for k, v in ordered:
                old = self._rows.get(k)
                for i, cell in enumerate(v):
                    if old is None or _plain(old[i]) != _plain(cell) or str(old[i]) != str(cell):
                        self.update_cell(k, cols[i], cell, update_width=True)
        self._rows = rows

    def selected_key(self) -> str | None:
        if self.row_count == 0:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:
            return None


def _plain(cell: Any) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)


def _sortable(v: str) -> tuple:
    try:
        return (0, float(v.split()[0].replace(":", "")), v)
    except (ValueError, IndexError):
        return (1, 0.0, v)


class ChannelsTable(KeyedTable):
    BORDER_TITLE = "Channels"
    COLUMNS = (("n", "#"), ("name", "Name"), ("state", "State"), ("health", "Health"), ("breaker", "Breaker"),
               ("viewers", "Viewers"), ("now", "Now playing"), ("prog", "Progress"), ("fps", "FPS"),
               ("speed", "Speed"), ("kbps", "kb/s"))

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
            rows[n] = (n, ch["name"][:20], styled(ch["state"]), styled(health),
                       breaker_text(snap.breakers.get(n, ch.get("breaker", {}))), str(ch.get("viewers", 0)),
                       title[:28], progress_bar(frac, 8) if np and ch.get("state") != "error_screen" else "",
                       f"{ff.get('fps', 0):.0f}" if running else "-",
                       f"{ff.get('speed', 0):.2f}x" if running else "-",
                       f"{ff.get('bitrate_kbps', 0):.0f}" if running else "-")
        self.show(rows)


class SessionsTable(KeyedTable):
    BORDER_TITLE = "Sessions"
    COLUMNS = (("client", "Client"), ("ch", "Ch"), ("state", "State"), ("dur", "Duration"), ("bytes", "Sent"),
               ("rate", "Rate"))

    def update_from(self, snap: EngineSnapshot) -> None:
        rows = {}
        for s in snap.sessions:
            rows[s["session_id"]] = (s["client_addr"], str(s["channel_id"]), styled(s["state"]),
                                     human_duration(s["duration_seconds"]), human_bytes(s["bytes_sent"]),
                                     human_rate(s["current_rate_bps"]))
        live = len(rows)
        for s in snap.recent_disconnects[:5]:  # who left lately, and why
            rows["x" + s["session_id"]] = (Text(s["client_addr"], style="dim"), str(s["channel_id"]),
                                           styled("disconnected"), human_duration(s["duration_seconds"]),
                                           human_bytes(s["bytes_sent"]),
                                           Text((s.get("disconnect_reason") or "")[:24], style="dim"))
        self.border_subtitle = f"{live} live"
        self.show(rows)

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
