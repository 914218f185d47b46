"""A table that renders only the rows on screen.

Textual's ``DataTable`` keeps every row as renderables and re-measures every cell of every
row when widths change; with thousands of sessions that made one refresh cost seconds of
event-loop time while viewers waited. This table is a Line-API ``ScrollView``:

- columns have fixed widths (one or more ``flex`` columns share what is left), so nothing is
  ever measured; cells are truncated with an ellipsis;
- it holds a *window* of rows (``offset`` into ``total``), so a data source can hand over just
  the rows in view (the sessions table pages in the engine);
- ``render_line`` formats only the lines Textual asks for, and a refresh happens only when
  the rows in view changed;
- cells are plain ``str`` or ``rich.text.Text``, never markup: a title like
  ``Best of [/r/videos]`` is shown as it is.

``cells_rendered`` counts the cells formatted since start (tests assert a refresh costs what
the rows on screen cost, not what all rows cost).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

Cell = str | Text
Row = tuple[str, Sequence[Cell]]  # (key, cells)


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # cells; for a flex column, its minimum
    flex: bool = False


def fit(text: str, width: int) -> str:
    """``text`` cut (with an ellipsis) or padded to exactly ``width`` cells (ASCII-width fast path)."""
    if width <= 0:
        return ""
    if text.isascii():
        if len(text) <= width:
            return text.ljust(width)
        return text[:width - 1] + "…"
    t = Text(text)
    t.truncate(width, overflow="ellipsis", pad=True)
    return t.plain


class VirtualTable(ScrollView, can_focus=True):
    COLUMNS: ClassVar[tuple[Column, ...]] = ()
    COMPONENT_CLASSES: ClassVar[set[str]] = {"vtable--header", "vtable--cursor", "vtable--even-row"}
    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        overflow-y: auto;
        &:focus { background-tint: $foreground 5%; }
        & > .vtable--header { text-style: bold; background: $panel; color: $foreground; }
        & > .vtable--even-row { background: $surface-lighten-1 50%; }
        & > .vtable--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .vtable--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    BINDINGS = [
        Binding("up", "cursor(-1)", show=False), Binding("down", "cursor(1)", show=False),
        Binding("pageup", "page(-1)", show=False), Binding("pagedown", "page(1)", show=False),
        Binding("home", "edge(0)", show=False), Binding("end", "edge(1)", show=False),
    ]

    class WindowChanged(Message):
        """The rows in view moved (scroll or cursor): a paged source may hand over another window."""

        def __init__(self, table: "VirtualTable") -> None:
            super().__init__()
            self.table = table

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.rows: list[Row] = []  # the window held: rows offset .. offset + len(rows) - 1
        self.window_start = 0
        self.total = 0
        self.cursor_row = 0
        self.cells_rendered = 0
        self._cursor_key: str | None = None
        self._last_window: tuple[int, int] | None = None
        self._widths_cache: tuple[int, list[int]] | None = None

    # ------------------------------------------------------------ data
    @property
    def row_count(self) -> int:
        return self.total

    def page_size(self) -> int:
        """Rows that fit on screen (what a paged source should hand over)."""
        return max(1, self.scrollable_content_region.height - 1)

    def set_rows(self, rows: list[Row], total: int | None = None, offset: int = 0) -> None:
        """Hold ``rows`` as the window starting at ``offset`` of ``total`` rows.

        The cursor stays on the same key when that key is still in the window."""
        total = len(rows) if total is None else max(total, offset + len(rows))
        changed = rows != self.rows or total != self.total or offset != self.window_start
        keep = self._cursor_key
        self.rows, self.total, self.window_start = rows, total, offset
        if keep is not None:
            for i, (key, _) in enumerate(rows):
                if key == keep:
                    self.cursor_row = offset + i
                    break
        self.cursor_row = max(0, min(self.cursor_row, total - 1))
        self._cursor_key = self.key_at(self.cursor_row)
        if self.virtual_size.height != total + 1:
            self.virtual_size = Size(self.size.width, total + 1)
        if changed:
            self.refresh()

    def row_at(self, index: int) -> Row | None:
        i = index - self.window_start
        return self.rows[i] if 0 <= i < len(self.rows) else None

    def key_at(self, index: int) -> str | None:
        row = self.row_at(index)
        return row[0] if row else None

    def get_row_at(self, index: int) -> list[str]:
        row = self.row_at(index)
        return [] if row is None else [c.plain if isinstance(c, Text) else str(c) for c in row[1]]

    def selected_key(self) -> str | None:
        return self.key_at(self.cursor_row) if self.total else None

    def move_cursor(self, row: int) -> None:
        if not self.total:
            return
        self.cursor_row = max(0, min(row, self.total - 1))
        self._cursor_key = self.key_at(self.cursor_row)
        top, visible = int(self.scroll_y), self.page_size()
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + visible:
            self.scroll_to(y=self.cursor_row - visible + 1, animate=False, immediate=True)
        self.refresh()
        self._window_moved()

    # ------------------------------------------------------------ input
    def action_cursor(self, delta: int) -> None:
        self.move_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self.move_cursor(self.cursor_row + direction * self.page_size())

    def action_edge(self, end: int) -> None:
        self.move_cursor(self.total - 1 if end else 0)

    def on_click(self, event: events.Click) -> None:
        if event.y >= 1:
            self.move_cursor(int(self.scroll_y) + event.y - 1)

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self._window_moved()

    def on_resize(self, event: events.Resize) -> None:
        self.virtual_size = Size(event.size.width, self.total + 1)
        self._window_moved()

    def _window_moved(self) -> None:
        window = (int(self.scroll_y), self.page_size())
        if window != self._last_window:
            self._last_window = window
            self.post_message(self.WindowChanged(self))

    # ------------------------------------------------------------ rendering
    def column_widths(self, width: int) -> list[int]:
        """Cells per column at this width; columns that do not fit (from the right) get 0 (hidden)."""
        cached = self._widths_cache
        if cached is not None and cached[0] == width:
            return cached[1]
        cols = self.COLUMNS
        shown = len(cols)
        while shown > 1 and sum(c.width + 1 for c in cols[:shown]) > width:
            shown -= 1
        widths = [c.width if i < shown else 0 for i, c in enumerate(cols)]
        flex = [i for i in range(shown) if cols[i].flex] or [shown - 1]
        spare = max(0, width - sum(w + 1 for w in widths[:shown]))
        for k, i in enumerate(flex):
            widths[i] += spare // len(flex) + (1 if k < spare % len(flex) else 0)
        self._widths_cache = (width, widths)
        return widths

    def _line(self, cells: Sequence[Cell], widths: list[int], base: Style) -> list[Segment]:
        segs: list[Segment] = []
        console = self.app.console
        for cell, w in zip(cells, widths):
            if not w:
                continue
            segs.append(Segment(" ", base))
            if isinstance(cell, Text):
                t = cell.copy()
                t.truncate(w, overflow="ellipsis", pad=True)
                cell_style = base + console.get_style(t.style) if t.style else base
                for s in t.render(console, end=""):
                    segs.append(Segment(s.text, cell_style + s.style if s.style else cell_style))
            else:
                segs.append(Segment(fit(cell, w), base))
        self.cells_rendered += len(cells)
        return segs

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self.column_widths(width)
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("vtable--header")
            segs = self._line([c.label for c in self.COLUMNS], widths, style)
            return Strip(segs).adjust_cell_length(width, style)
        index = int(self.scroll_y) + y - 1
        if index >= self.total:
            return Strip.blank(width, base)
        style = base
        if index % 2:
            style = style + self.get_component_rich_style("vtable--even-row")
        if index == self.cursor_row:
            style = style + self.get_component_rich_style("vtable--cursor")
        row = self.row_at(index)
        if row is None:  # outside the window held (a new page is on its way)
            return Strip([Segment(fit(" …", width), style)]).adjust_cell_length(width, style)
        return Strip(self._line(row[1], widths, style)).adjust_cell_length(width, style)


SortKey = Callable[[Sequence[Cell]], Any]


def plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else str(cell)
