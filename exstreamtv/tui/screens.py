"""Modal screens: help, confirmation, error-screen preview, shutdown progress."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from ..engine.pipeline.error_screens import ErrorAudioMode, ErrorVisualMode
from .widgets import PreviewImageWidget

HELP = """\
[b]EXStreamTV console[/b]

[b]r[/b]      restart the selected channel (through the restart guards)
[b]e[/b]      error-screen preview for the selected channel; Enter puts it on air
[b]k[/b]      kick (disconnect) the selected session
[b]l[/b]      libraries: items, scan progress, problems; s rescans the selected one
[b]u[/b]      upcoming: the selected channel's playout for the next 24 h
[b]R[/b]      reload the config file (a bad one is refused and the running one stays)
[b]/[/b]      filter the tables (Esc clears)
[b]s[/b]      sort the focused table (next column / direction)
[b]tab[/b]    move between panels
[b]ctrl+p[/b] command palette
[b]?[/b]      this help
[b]q[/b]      quit: stop every viewer stream and FFmpeg process, then exit

Watch a channel:  ffplay {url}/stream/channels/1.ts
Playlist:         {url}/iptv/channels.m3u
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box", classes="modal-box"):
            yield Static(HELP.format(url=self.url), id="help-text")
            yield Static("[dim]Esc to close[/dim]")

    def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "yes", "Yes"), Binding("n,escape", "no", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Label(Text(self.question))
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="warning", id="yes")
                yield Button("No (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)


class ErrorScreenPreview(ModalScreen[None]):
    """Renders the channel's error screen (the generator's own preview frame) and puts it on air."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("ctrl+r", "redraw", "Re-render")]

    def preview_size(self) -> tuple[int, int]:
        """Pixels of the half-block picture: as wide as the terminal allows beside the form, 16:9."""
        cols, rows = self.app.size
        width = max(16, min(96, cols - 40))
        height = min(int(width * 9 / 16) // 2 * 2, max(8, (rows - 6) * 2))
        return width, height

    def __init__(self, control, channel_id: int, channel_name: str, defaults: dict[str, str]) -> None:
        super().__init__()
        self.control = control
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.defaults = defaults

    def compose(self) -> ComposeResult:
        with Vertical(id="preview-box", classes="modal-box"):
            yield Static(Text(f"Error screen — channel {self.channel_id} {self.channel_name}", style="bold"),
                         id="preview-head")
            with Horizontal(id="preview-body"):
                yield PreviewImageWidget("rendering…", id="preview-image")
                with Grid(id="preview-form"):
                    yield Label("Visual")
                    yield Select([(m.value, m.value) for m in ErrorVisualMode], value=self.defaults["visual_mode"],
                                 allow_blank=False, id="visual", compact=True)
                    yield Label("Audio")
                    yield Select([(m.value, m.value) for m in ErrorAudioMode], value=self.defaults["audio_mode"],
                                 allow_blank=False, id="audio", compact=True)
                    yield Label("Title")
                    yield Input(self.defaults["title"], id="title", compact=True)
                    yield Label("Subtitle")
                    yield Input(self.defaults["subtitle"], id="subtitle", compact=True)
                    yield Label("Seconds")
                    yield Input("30", id="seconds", type="integer", compact=True)
            yield Static("[b]Enter[/b] put on air   [b]ctrl+r[/b] re-render   [b]Esc[/b] close", id="preview-help")

    def on_mount(self) -> None:
        self.action_redraw()

    def params(self) -> dict[str, Any]:
        return {"visual_mode": self.query_one("#visual", Select).value,
                "audio_mode": self.query_one("#audio", Select).value,
                "title": self.query_one("#title", Input).value,
                "subtitle": self.query_one("#subtitle", Input).value}

    def action_redraw(self) -> None:
        self.run_worker(self._draw_preview, exclusive=True, group="preview")

    async def _draw_preview(self) -> None:
        widget = self.query_one("#preview-image", PreviewImageWidget)
        try:
            w, h = self.preview_size()
            img = await self.control.preview(self.channel_id, self.params(), w, h)
        except Exception as exc:  # a failed render is shown, never a crash
            widget.update(f"[red]preview failed:[/red] {exc}")
            return
        widget.show_image(img)

    def on_select_changed(self, event: Select.Changed) -> None:
        self.action_redraw()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.run_worker(self.put_on_air(), group="command")

    def key_enter(self) -> None:
        self.run_worker(self.put_on_air(), group="command")

    async def put_on_air(self) -> None:
        raw = self.query_one("#seconds", Input).value or "30"
        try:
            seconds = float(raw)
        except ValueError:
            self.app.notify(f"Seconds must be a number, got {raw!r}", severity="error", markup=False)
            return
        if not 1 <= seconds <= 3600:
            self.app.notify("Seconds must be between 1 and 3600", severity="error")
            return
        result = await self.control.show_error_screen(self.channel_id, seconds, self.params())
        self.app.notify(result.message, severity="information" if result.ok else "error", markup=False)
        if result.ok:
            self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class ShutdownScreen(ModalScreen[None]):
    def compose(self) -> ComposeResult:
        with Vertical(id="shutdown-box", classes="modal-box"):
            yield Static("[b]Shutting down[/b]", id="shutdown-title")
            yield Static("ending viewer streams and FFmpeg processes…", id="shutdown-status")

    def set_status(self, text: str) -> None:
        self.query_one("#shutdown-status", Static).update(text)
