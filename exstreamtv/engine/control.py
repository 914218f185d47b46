"""The console's one small interface to the engine: read a snapshot, send commands.

Everything here is plain data (dicts and lists that JSON can carry): ``LocalControl``
(``local_control.py``) is the in-process implementation (the embedded console, and the HTTP
server, whose every handler goes through it);
``exstreamtv/attach.py``'s ``HttpControl`` is the same interface over HTTP, for a console
attached to a running server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .pipeline.error_screens import PreviewImage


@dataclass
class CommandResult:
    ok: bool
    message: str
    reason: str | None = None
    retry_after_seconds: float | None = None


@dataclass
class SnapshotQuery:
    """What one console refresh needs: the cost of a snapshot follows the rows in view."""

    events_since: int = 0
    sessions_offset: int = 0
    sessions_limit: int = 60
    sessions_sort: str = "client"  # client, ch, state, dur, bytes, rate
    sessions_reverse: bool = False
    sessions_filter: str = ""
    health_channel: int | None = None  # the one channel whose history is sent
    history: int = 120
    library_problems: int = 0  # problems (and warnings) listed per library


@dataclass
class EngineSnapshot:
    uptime_seconds: float
    urls: list[str]
    channels: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    recent_disconnects: list[dict[str, Any]]
    pool: dict[str, Any]
    breakers: dict[str, dict[str, Any]]
    health: dict[str, dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    now: float = 0.0  # wall clock of the snapshot (progress bars are computed against it)
    sessions_total: int | None = None  # live sessions matching the query (``sessions`` is one page of them)
    sessions_offset: int = 0
    loop: dict[str, Any] = field(default_factory=dict)  # event-loop lag (LoopLagMonitor.snapshot)
    scan: dict[str, Any] = field(default_factory=dict)  # background media probe (ScanProgress.snapshot)
    libraries: list[dict[str, Any]] = field(default_factory=list)  # each library: counts, scan progress, problems


class ControlUnavailable(Exception):
    """The console could not reach an engine (start-up failed, no server found); the message says why."""


class ConsoleBackend(Protocol):
    """What the console is handed by the command line: it starts (or attaches to) an engine and
    gives the control, and stops (or detaches) at the end. The console never builds a server."""

    owns_server: bool  # False: quitting the console leaves the server running

    async def start(self) -> "EngineControl": ...

    async def stop(self, status: Any = None) -> None: ...


@dataclass
class ControlInfo:
    """How the console reaches the engine (shown in its header)."""

    mode: str = "local"  # local: the console runs the server; attached: over HTTP to a running one
    url: str = ""
    read_only: bool = False
    connected: bool = True
    disconnected_since: float | None = None  # wall clock
    error: str = ""


class EngineControl(Protocol):
    def snapshot(self, query: SnapshotQuery | None = None) -> EngineSnapshot: ...

    async def restart(self, channel_id: int) -> CommandResult: ...

    async def show_error_screen(self, channel_id: int, seconds: float, params: dict[str, Any]) -> CommandResult: ...

    async def kick(self, session_id: str) -> CommandResult: ...

    async def scan_library(self, name: str) -> CommandResult: ...

    async def upcoming(self, channel_id: int, hours: float) -> dict[str, Any]: ...

    async def reload(self) -> CommandResult: ...

    async def preview(self, channel_id: int, params: dict[str, Any], width: int, height: int) -> PreviewImage: ...

    def describe(self) -> "ControlInfo": ...
