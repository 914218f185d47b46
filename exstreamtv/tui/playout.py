"""The upcoming playout of the selected channel (key ``u``): each airing's time, kind
(programme, filler, slate) and title, and the collection it came from. Text only."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

STYLE = {"program": "", "filler": "cyan", "slate": "dim"}


def render_playout(data: dict[str, Any], width: int = 100) -> Text:
    out = Text()
    out.append(f"Channel {data['channel']}: the next {data['hours']:g} h "
               f"({'programmed' if data.get('programmed') else 'lineup'})\n\n", style="bold")
    day = ""
    for a in data["airings"]:
        d = time.strftime("%a %d %b", time.localtime(a["start"]))
        if d != day:
            out.append(d + "\n", style="bold underline")
            day = d
        line = (f"  {time.strftime('%H:%M:%S', time.localtime(a['start']))}-"
                f"{time.strftime('%H:%M:%S', time.localtime(a['end']))}  {a['kind']:<7} {a['title']}")
        if a.get("collection"):
            line += f"  [{a['collection']}]"
        out.append(line[:width] + "\n", style=STYLE.get(a["kind"], ""))
    if not data["airings"]:
        out.append("nothing scheduled (the channel has nothing to play)\n", style="dim")
    return out


class PlayoutScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,u", "close", "Close")]

    def __init__(self, control, channel_id: int) -> None:
        super().__init__()
        self.control = control
        self.channel_id = channel_id

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="playout-box", classes="modal-box"):
            yield Static(Text("loading…", style="dim"), id="playout-text")

    async def on_mount(self) -> None:
        try:
            data = await self.control.upcoming(self.channel_id, 24.0)
            text = render_playout(data, max(40, self.size.width - 8))
        except Exception as exc:  # shown, never fatal
            text = Text(f"cannot read the playout: {exc}", style="red")
        self.query_one("#playout-text", Static).update(text)

    def action_close(self) -> None:
        self.dismiss(None)
