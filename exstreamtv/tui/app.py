"""The operations console: a Textual app handed its backend by the command line.

The app only renders ``EngineSnapshot``s and sends commands through an ``EngineControl``
(``engine/control.py``); it never reaches into engine objects and never builds a server. The
backend gives it the control: ``EmbeddedBackend`` (``cli.py``) runs the engine and the HTTP
server in this process, ``AttachedBackend`` reaches a running server over HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Input, Static

from ..engine.config import Config
from ..engine.control import (ConsoleBackend, ControlInfo, ControlUnavailable, EngineControl, EngineSnapshot,
                              SnapshotQuery)
from .commands import ChannelCommands
from .formatting import human_duration, progress_bar
from .screens import ConfirmScreen, ErrorScreenPreview, HelpScreen, ShutdownScreen
from .table import VirtualTable
from .widgets import ChannelsTable, EventsLog, HealthPanel, KeyedTable, PoolPanel, SessionsTable

log = logging.getLogger("exstreamtv.console")


class ConsoleApp(App[int]):
    CSS_PATH = "console.tcss"
    TITLE = "EXStreamTV"
    COMMANDS = App.COMMANDS | {ChannelCommands}
    BINDINGS = [
        Binding("r", "restart", "Restart"),
        Binding("e", "error_screen", "Error screen"),
        Binding("k", "kick", "Kick"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("l", "libraries", "Libraries", show=False),
        Binding("u", "upcoming", "Upcoming", show=False),
        Binding("R", "reload", "Reload config", show=False),  # in the help: the footer fits 80 columns
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit_console", "Quit"),
        Binding("ctrl+q,ctrl+c", "quit_console", show=False, priority=True),
        Binding("escape", "clear_filter", show=False),
    ]

    def __init__(self, backend: ConsoleBackend | None = None, control: EngineControl | None = None,
                 log_handler: Any = None, refresh_seconds: float = 1.0, config: Config | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.config = config
        self.control = control
        self.log_handler = log_handler  # records + seq: the process's log ring, or the attached server's lines
        self.refresh_seconds = refresh_seconds
        self.last_snapshot: EngineSnapshot | None = None
        self.library_problems = 0  # problems per library the snapshot lists (the libraries view sets it)
        self.startup_error: str | None = None
        self.refresh_count = 0
        self._selected_channel: str | None = None
        self.slowdown = 1  # refresh interval multiplier while the event loop lags (protects the stream)
        self.last_refresh_ms = 0.0
        self.panel_errors: dict[str, str] = {}
        self._refresh_timer = None
        self._window_refresh_pending = False

    @property
    def handle(self):
        """The embedded server (tests, screenshots), when this console runs it."""
        return getattr(self.backend, "handle", None)

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("EXStreamTV  starting…", id="status-line")
        yield ChannelsTable(id="channels")
        with Horizontal(id="middle"):
            yield SessionsTable(id="sessions")
            with Vertical(id="side"):
                yield PoolPanel(id="pool")
                yield HealthPanel(id="health")
        yield EventsLog(id="events")
        yield Input(placeholder="filter channels and sessions (Esc clears)", id="filter")
        yield Footer()

    async def on_mount(self) -> None:
        for wid in ("channels", "sessions", "pool", "health", "events"):
            w = self.query_one(f"#{wid}")
            w.border_title = getattr(w, "BORDER_TITLE", wid)
        self.query_one("#channels", ChannelsTable).focus()
        if self.control is None and self.backend is not None:
            self.run_worker(self._start_backend(), exclusive=True, group="backend")
        else:
            self.refresh_panels()
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        self._refresh_timer = self.set_timer(self.refresh_seconds * self.slowdown, self._tick)

    def _tick(self) -> None:
        try:
            self.refresh_panels()
        finally:
            self._schedule_refresh()

    def _adapt_rate(self, snap: EngineSnapshot) -> None:
        """Refresh less often while the loop lags (or a refresh itself is costly); back to normal after."""
        lag = max(snap.loop.get("current_ms", 0.0), snap.loop.get("p99_ms", 0.0))
        if lag > 50 or self.last_refresh_ms > 50:
            self.slowdown = min(8, self.slowdown * 2)
        elif lag < 20 and self.last_refresh_ms < 20 and self.slowdown > 1:
            self.slowdown //= 2

    async def _start_backend(self) -> None:
        assert self.backend is not None
        try:
            self.control = await self.backend.start()
        except ControlUnavailable as exc:
            self.startup_error = str(exc)
            self.exit(2)
            return
        except Exception as exc:  # shown as one line after the console closes, never a traceback
            log.exception("start-up failed")
            self.startup_error = f"start-up failed: {type(exc).__name__}: {exc}"
            self.exit(2)
            return
        if self.log_handler is None:
            self.log_handler = getattr(self.control, "logs", None)
        self.refresh_panels()

    # ------------------------------------------------------------ refresh
    def snapshot_query(self) -> SnapshotQuery:
        sessions = self.query_one("#sessions", SessionsTable)
        offset, limit = sessions.page_request()
        events = self.query_one("#events", EventsLog)
        channel = self.query_one("#channels", ChannelsTable).selected_key() or self._selected_channel
        return SnapshotQuery(events_since=events.last_event_id, sessions_offset=offset, sessions_limit=limit,
                             sessions_sort=sessions.sort_key, sessions_reverse=sessions.sort_reverse,
                             sessions_filter=sessions.filter_text,
                             health_channel=int(channel) if channel and channel.isdigit() else None,
                             library_problems=self.library_problems)

    def refresh_panels(self) -> None:
        if self.control is None:
            return
        started = time.perf_counter()
        info = self.control.describe()
        try:
            snap = self.control.snapshot(self.snapshot_query())
        except Exception as exc:  # the console shows it; it never takes the engine down
            if info.mode == "attached":
                self._disconnected(info)
                return
            log.exception("console snapshot failed")
            self._status(Text(f"EXStreamTV  snapshot failed: {type(exc).__name__}: {exc}", style="bold red"))
            return
        if not info.connected:  # attached and the server is gone: the last data stays, greyed out
            self._disconnected(info)
            return
        self.screen.remove_class("-stale")
        self.last_snapshot = snap
        self.refresh_count += 1
        channels = self.query_one("#channels", ChannelsTable)
        self._panel("channels", lambda: channels.update_from(snap))
        self._panel("sessions", lambda: self.query_one("#sessions", SessionsTable).update_from(snap))
        self._panel("pool", lambda: self.query_one("#pool", PoolPanel).update_from(snap))
        self._selected_channel = channels.selected_key() or (str(snap.channels[0]["number"]) if snap.channels
                                                              else None)
        self._panel("health", lambda: self.query_one("#health", HealthPanel).update_from(snap,
                                                                                         self._selected_channel))
        events = self.query_one("#events", EventsLog)
        self._panel("events", lambda: events.add_events(snap.events))
        if self.log_handler is not None:
            self._panel("log", lambda: events.add_log(self.log_handler.records, self.log_handler.seq))
        self.last_refresh_ms = (time.perf_counter() - started) * 1000
        self._adapt_rate(snap)
        self._panel("status", lambda: self._status(self.status_line(snap)))

    def _disconnected(self, info: ControlInfo) -> None:
        self.screen.add_class("-stale")
        since = time.strftime("%H:%M:%S", time.localtime(info.disconnected_since or time.time()))
        word = "connecting to" if self.last_snapshot is None else "disconnected from"
        line = Text.assemble(("EXStreamTV ", "bold"), (f"{word} {info.url} since {since}, retrying", "bold red"),
                             f"  ({info.error[:80]})  " if info.error else "  ",
                             ("q leaves the server running", "dim"))
        self._status(line)

    def status_line(self, snap: EngineSnapshot) -> Text:
        url = snap.urls[0] if snap.urls else ""
        info = self.control.describe() if self.control is not None else None
        pool = snap.pool
        total = snap.sessions_total if snap.sessions_total is not None else len(snap.sessions)
        lag = snap.loop.get("p99_ms")
        line = Text.assemble(("EXStreamTV ", "bold"), (url, "cyan"))
        if info is not None and info.mode == "attached":
            line.append(" attached" + (" read-only" if info.read_only else ""),
                        style="bold yellow" if info.read_only else "bold cyan")
        line.append(f"  up {human_duration(snap.uptime_seconds)}  ")
        line.append(
f"{len(snap.channels)} ch  {total} viewers  ffmpeg {pool['running']}/{pool['capacity']}  ")
        if lag is not None:
            line.append(f"loop {lag:.0f} ms  ", style="bold red" if lag > 100 else ("yellow" if lag > 20 else ""))
        scan = snap.scan or {}
        if scan.get("active"):
            total = max(1, scan["total"])
            eta = scan.get("eta_seconds")
            line.append(f"probing {scan['done']}/{scan['total']} ", style="cyan")
            line.append(progress_bar(scan["done"] / total, 8), style="cyan")
            line.append(f" {scan['rate_per_second']:.0f}/s" + (f" ETA {human_duration(eta)}" if eta else "") + "  ",
                        style="cyan")
        if self.slowdown > 1:
            line.append(f"refresh every {self.refresh_seconds * self.slowdown:g}s (loop busy)  ", style="yellow")
        if self.panel_errors:
            name, err = next(iter(self.panel_errors.items()))
            line.append(f"{name} panel error: {err}  ", style="bold red")
        if info is not None and info.mode == "attached":
            line.append("q detaches (the server keeps running)  ", style="dim")
        line.append("? help", style="dim")
        return line

    def _status(self, text: Text) -> None:
        self.query_one("#status-line", Static).update(text)

    def _panel(self, name: str, update) -> None:
        """Update one panel; a failure is shown in the console and logged, never raised."""
        try:
            update()
        except Exception as exc:
            if name not in self.panel_errors:
                log.exception("console panel %s failed", name)
            self.panel_errors[name] = f"{type(exc).__name__}: {exc}"[:120]
        else:
            self.panel_errors.pop(name, None)

    def on_virtual_table_window_changed(self, message: VirtualTable.WindowChanged) -> None:
        """Scrolling the sessions: fetch the rows now in view (coalesced)."""
        if isinstance(message.table, SessionsTable) and not self._window_refresh_pending:
            self._window_refresh_pending = True

            def go() -> None:
                self._window_refresh_pending = False
                self.refresh_panels()

            self.call_later(go)

    # ------------------------------------------------------------ commands
    def selected_channel(self) -> int | None:
        key = self.query_one("#channels", ChannelsTable).selected_key()
        return int(key) if key else None

    def _channel(self, n: int) -> dict[str, Any] | None:
        snap = self.last_snapshot
        return next((c for c in snap.channels if c["number"] == n), None) if snap else None

    def action_restart(self) -> None:
        n = self.selected_channel()
        if n is None:
            self.notify("No channel selected", severity="warning")
            return
        ch = self._channel(n)
        if ch and ch.get("viewers", 0) > 0:
            self.push_screen(ConfirmScreen(f"Restart channel {n} ({ch['name']}) with {ch['viewers']} viewer(s)?"),
                             lambda ok: self.restart_channel(n) if ok else None)
        else:
            self.restart_channel(n)

    def restart_channel(self, n: int) -> None:
        self.run_worker(self._restart(n), group="command")

    async def _restart(self, n: int) -> None:
        if self.control is None:
            return
        result = await self.control.restart(n)
        self.notify(result.message, title="Restart", severity="information" if result.ok else "warning",
                    timeout=6, markup=False)
        self.refresh_panels()

    def action_error_screen(self) -> None:
        n = self.selected_channel()
        if n is not None:
            self.open_preview(n)

    def open_preview(self, n: int) -> None:
        if self.control is None:
            return
        ch = self._channel(n) or {"name": str(n)}
        defaults = {"visual_mode": "slate", "audio_mode": "silent", "title": "Technical Difficulties",
                    "subtitle": "Please stand by. The programme will return shortly."}
        if self.config is not None:
            es = self.config.error_screen
            defaults = {"visual_mode": es.visual_mode, "audio_mode": es.audio_mode, "title": es.title,
                        "subtitle": es.subtitle}
        self.push_screen(ErrorScreenPreview(self.control, n, ch["name"], defaults))

    def action_kick(self) -> None:
        key = self.query_one("#sessions", SessionsTable).selected_key()
        if key is None:
            self.notify("No session selected (tab to the sessions panel)", severity="warning")
            return
        self.kick_session(key)

    def kick_session(self, session_id: str) -> None:
        self.run_worker(self._kick(session_id), group="command")

    async def _kick(self, session_id: str) -> None:
        if self.control is None:
            return
        result = await self.control.kick(session_id)
        self.notify(result.message, severity="information" if result.ok else "warning", markup=False)
        self.refresh_panels()

    def action_filter(self) -> None:
        f = self.query_one("#filter", Input)
        f.add_class("-visible")
        f.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            for t in self.query(KeyedTable):
                t.filter_text = event.value
            self.refresh_panels()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one("#channels", ChannelsTable).focus()

    def action_clear_filter(self) -> None:
        f = self.query_one("#filter", Input)
        if f.has_class("-visible"):
            f.value = ""
            f.remove_class("-visible")
            self.query_one("#channels", ChannelsTable).focus()

    def action_sort(self) -> None:
        focused = self.focused if isinstance(self.focused, KeyedTable) else self.query_one("#channels", ChannelsTable)
        label = focused.cycle_sort()
        self.notify(f"{focused.border_title}: sorted by {label}", timeout=2, markup=False)
        self.refresh_panels()

    async def action_reload(self) -> None:
        result = await self.control.reload()
        self.notify(result.message, severity="information" if result.ok else "error", timeout=8)

    def action_upcoming(self) -> None:
        from .playout import PlayoutScreen

        n = self.query_one("#channels", ChannelsTable).selected_key() or self._selected_channel
        if n and n.isdigit():
            self.push_screen(PlayoutScreen(self.control, int(n)))

    def action_libraries(self) -> None:
        from .libraries import LibrariesScreen

        self.push_screen(LibrariesScreen(self.control))

    def action_help(self) -> None:
        url = self.last_snapshot.urls[0] if self.last_snapshot and self.last_snapshot.urls else "http://HOST:8411"
        self.push_screen(HelpScreen(url))

    async def action_quit_console(self) -> None:
        if isinstance(self.screen, ShutdownScreen):
            return  # already stopping
        screen = ShutdownScreen()
        await self.push_screen(screen)
        if self.backend is not None:
            await self.backend.stop(screen.set_status)
            await asyncio.sleep(0.2)
        self.exit(0)



class AttachedConsoleApp(ConsoleApp):
    """The console attached to a running server: the footer says that q only detaches."""

    BINDINGS = [Binding("q", "quit_console", "Detach (server keeps running)")]


def run_console(backend: ConsoleBackend, log_level: str, config: Config | None = None) -> int:
    """Run the console on ``backend`` (built by the command line: embedded engine or attached)."""
    from .log_handler import install

    handler = install(log_level)  # nothing may write to the terminal behind Textual
    # attached: the events panel shows the server's log lines (the control's), not this process's
    cls = ConsoleApp if backend.owns_server else AttachedConsoleApp
    app = cls(backend, log_handler=handler if backend.owns_server else None, config=config)
    rc = app.run()
    if app.startup_error:
        print(f"exstreamtv: {app.startup_error}", file=sys.stderr)
        return 2
    leftovers = getattr(backend, "kill_leftovers", None)
    if leftovers is not None:  # the loop ended without a graceful stop
        leftovers()
    return rc if isinstance(rc, int) else 0
