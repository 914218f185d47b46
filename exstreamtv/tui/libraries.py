"""The libraries view (key ``l``): each library's items, shows, problems, last scan, a
progress bar while it scans (files probed of total, rate, ETA), and the selected library's
problem list. ``s`` rescans the selected library. Everything shown is text, never markup."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

BAR = 24


def progress_bar(done: int, total: int, width: int = BAR) -> str:
    filled = int(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def render_libraries(libraries: list[dict[str, Any]], selected: int, width: int = 100) -> Text:
    out = Text()
    if not libraries:
        out.append("No libraries configured (see libraries: in the config).", style="dim")
        return out
    out.append(f"{'':2}{'library':<14}{'kind':<8}{'items':>7}{'shows':>7}{'skipped':>9}  last scan\n", style="bold")
    for i, lib in enumerate(libraries):
        mark = "▶ " if i == selected else "  "
        last = time.strftime("%H:%M:%S", time.localtime(lib["last_scan"])) if lib.get("last_scan") else "never"
        took = f" ({lib['last_scan_seconds']}s)" if lib.get("last_scan_seconds") is not None else ""
        line = (f"{mark}{lib['name'][:13]:<14}{lib['kind']:<8}{lib['items']:>7}{lib['shows']:>7}"
                f"{lib['problems']:>9}  {last}{took}")
        out.append(line[:width] + "\n", style="bold" if i == selected else "")
        scan = lib.get("scan")
        if lib.get("scanning") and scan:
            eta = f", about {scan['eta_seconds']:.0f}s left" if scan.get("eta_seconds") else ""
            out.append(f"    {scan['phase']:<8} {progress_bar(scan['probed'], scan['to_probe'])} "
                       f"{scan['probed']}/{scan['to_probe']} files probed ({scan['files']} found), "
                       f"{scan['rate_per_second']:.1f}/s{eta}\n", style="cyan")
    lib = libraries[selected]
    problems = lib.get("problem_list") or []
    out.append(f"\nProblems and warnings in {lib['name']} ({lib['problems']} skipped, {lib['warnings']} warnings):\n",
               style="bold")
    if not problems:
        out.append("  none\n", style="dim")
    for p in problems:
        out.append(f"  {p['path']}"[:width] + "\n")
        out.append(f"      {p['reason']}"[:width] + "\n", style="yellow")
    return out


class LibrariesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,l", "close", "Close"), Binding("s", "scan", "Scan"),
                Binding("up", "move(-1)", show=False), Binding("down", "move(1)", show=False)]

    def __init__(self, control) -> None:
        super().__init__()
        self.control = control
        self.selected = 0

    def compose(self) -> ComposeResult:
        with Vertical(id="libraries-box", classes="modal-box"):
            yield Static("Libraries", classes="modal-title")
            yield Static(id="libraries-text")
            yield Static(Text("↑↓ select  s scan  Esc close", style="dim"), id="libraries-status")

    def on_mount(self) -> None:
        self.app.library_problems = 30  # ask for the problem lists while this is open
        self.redraw()
        self.set_interval(1.0, self.redraw)

    def on_unmount(self) -> None:
        self.app.library_problems = 0

    def libraries(self) -> list[dict[str, Any]]:
        snap = getattr(self.app, "last_snapshot", None)
        return list(snap.libraries) if snap is not None else []

    def redraw(self) -> None:
        libs = self.libraries()
        self.selected = max(0, min(self.selected, len(libs) - 1))
        self.query_one("#libraries-text", Static).update(render_libraries(libs, self.selected,
                                                                          max(40, self.size.width - 6)))

    def action_move(self, step: int) -> None:
        self.selected += step
        self.redraw()

    async def action_scan(self) -> None:
        libs = self.libraries()
        if not libs:
            return
        result = await self.control.scan_library(libs[self.selected]["name"])
        self.query_one("#libraries-status", Static).update(Text(result.message, style="green" if result.ok else "red"))

    def action_close(self) -> None:
        self.dismiss(None)
