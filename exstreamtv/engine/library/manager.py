"""The libraries of a server: loaded at start from the data dir (so serving never waits for
a scan), scanned at start, on an interval, on demand; each scan's result is kept in
``libraries/<name>.json`` (written atomically) and announced to the engine, which rebuilds
the schedules of the channels that play the library."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..clock import Clock
from ..config import LibraryConfig, LibraryScanConfig
from ..observe.events import EventLog
from ..onair.media import MediaProbe
from .model import Item, Library
from .scanner import ScanState, scan_library

log = logging.getLogger("exstreamtv.library")
STATE_VERSION = 1


def release_freed_memory() -> None:
    """Ask glibc to return freed heap pages to the system (large JSON loads leave many)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class UnknownLibrary(KeyError):
    def __str__(self) -> str:
        return f"unknown library {self.args[0]!r}"


class LibraryManager:
    def __init__(self, configs: list[LibraryConfig], settings: LibraryScanConfig, data_dir: Path, clock: Clock,
                 events: EventLog) -> None:
        self.configs = {c.name: c for c in configs}
        self.settings = settings
        self.dir = data_dir / "libraries"
        self.clock = clock
        self.events = events
        self.libraries: dict[str, Library] = {c.name: Library(c.name, c.kind) for c in configs}
        self.scans: dict[str, ScanState] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._interval: asyncio.Task | None = None
        self.probe: MediaProbe | None = None
        self.on_changed: Callable[[str], None] | None = None  # the engine rebuilds schedules

    def reconfigure(self, configs: list[LibraryConfig], settings: LibraryScanConfig) -> None:
        """A reload: new libraries join (from their saved state), removed ones leave."""
        self.settings = settings
        new = {c.name: c for c in configs}
        for name in set(self.libraries) - set(new):
            del self.libraries[name]
        for name, cfg in new.items():
            old = self.configs.get(name)
            if name not in self.libraries or (old is not None and old.kind != cfg.kind):
                self.libraries[name] = Library(name, cfg.kind)
        self.configs = new
        self.load(only=[n for n in new if self.libraries[n].last_scan is None])

    # ------------------------------------------------------------ state
    def load(self, only: list[str] | None = None) -> None:
        """What the last scans found (instant: no file is opened but the state files)."""
        self._load(only)
        release_freed_memory()  # the JSON's transient objects: give the pages back

    def _load(self, only: list[str] | None = None) -> None:
        for name, cfg in self.configs.items():
            if only is not None and name not in only:
                continue
            path = self.dir / f"{name}.json"
            if not path.exists():
                continue
            try:
                data = json.loads(path.read_text())
                if data.get("version") != STATE_VERSION or data.get("kind") != cfg.kind:
                    continue  # another format or a changed kind: scan afresh
                lib = Library(name, cfg.kind, {d["path"]: Item.from_dict(d) for d in data["items"]},
                              dict(data.get("problems", {})), dict(data.get("warnings", {})), data.get("last_scan"),
                              data.get("last_scan_seconds"), 1)
                self.libraries[name] = lib
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self.events.emit("library_warning", f"library {name}: saved state {path} unreadable ({exc}); "
                                 "scanning afresh", None, level=logging.WARNING)

    def _save(self, lib: Library) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{lib.name}.json"
        tmp = path.with_suffix(".tmp")
        body = {"version": STATE_VERSION, "kind": lib.kind, "last_scan": lib.last_scan,
                "last_scan_seconds": lib.last_scan_seconds, "problems": lib.problems, "warnings": lib.warnings,
                "items": [it.to_dict() for it in lib.items.values()]}
        tmp.write_text(json.dumps(body, separators=(",", ":")))
        os.replace(tmp, path)

    # ------------------------------------------------------------ scanning
    def get(self, name: str) -> Library:
        try:
            return self.libraries[name]
        except KeyError:
            raise UnknownLibrary(name) from None

    def scanning(self, name: str) -> bool:
        t = self._tasks.get(name)
        return t is not None and not t.done()

    def scan(self, name: str) -> bool:
        """Start a scan of ``name`` (False: one is already running)."""
        self.get(name)
        if self.scanning(name):
            return False
        self._tasks[name] = asyncio.get_running_loop().create_task(self._scan(name), name=f"scan-{name}")
        return True

    def scan_all(self) -> None:
        for name in self.configs:
            self.scan(name)

    async def wait(self, name: str | None = None) -> None:
        tasks = [t for n, t in self._tasks.items() if name is None or n == name]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _scan(self, name: str) -> None:
        assert self.probe is not None
        cfg = self.configs[name]
        previous = self.libraries[name]
        state = self.scans[name] = ScanState(self.clock.monotonic)
        self.events.emit("library_scan_started", f"library {name}: scanning {', '.join(cfg.paths)}")
        try:
            lib = await scan_library(cfg, previous, self.probe, self.settings.max_nfo_bytes, state)
        except Exception as exc:  # a scan must never take the server down
            log.exception("library %s: scan failed", name)
            self.events.emit("library_scan_failed", f"library {name}: scan failed: {exc}", None, level=logging.ERROR)
            return
        finally:
            self.probe.flush()
        lib.last_scan = self.clock.time()
        lib.last_scan_seconds = round(state.finished - state.started, 3) if state.finished else None
        for path, why in lib.warnings.items():
            if previous.warnings.get(path) != why:
                self.events.emit("library_warning", f"library {name}: {path}: {why}", None, level=logging.WARNING,
                                 path=path, reason=why)
        for path, why in lib.problems.items():
            if previous.problems.get(path) != why:
                self.events.emit("media_skipped", f"library {name}: {path}: {why} (skipped)", None,
                                 level=logging.WARNING, path=path, reason=why)
        self.libraries[name] = lib
        try:
            await asyncio.to_thread(self._save, lib)
            # saved: the library's state file holds what the probe cache knew of its files
            if self.probe.forget(set(lib.items)):
                self.probe.flush()
        except OSError as exc:
            self.events.emit("library_warning", f"library {name}: cannot save its state: {exc}", None,
                             level=logging.WARNING)
        added = len(set(lib.items) - set(previous.items))
        removed = len(set(previous.items) - set(lib.items))
        self.events.emit("library_scan_finished", f"library {name}: {len(lib.items)} item(s) ({added} new, "
                         f"{removed} gone, {state.total} probed, {len(lib.problems)} skipped) in "
                         f"{lib.last_scan_seconds}s", None, items=len(lib.items), added=added, removed=removed)
        if lib.version != previous.version and self.on_changed is not None:
            self.on_changed(name)

    def start_interval(self) -> None:
        minutes = self.settings.interval_minutes
        if minutes > 0 and self.configs:
            self._interval = asyncio.get_running_loop().create_task(self._interval_loop(minutes * 60.0),
                                                                    name="library-interval")

    async def _interval_loop(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.scan_all()

    async def stop(self) -> None:
        tasks = [t for t in (self._interval, *self._tasks.values()) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------ reading
    def snapshot(self) -> list[dict[str, Any]]:
        out = []
        for name, lib in self.libraries.items():
            cfg = self.configs[name]
            kinds, shows = self._counts(lib)
            scan = self.scans.get(name)
            out.append({"name": name, "kind": lib.kind, "paths": cfg.paths, "items": len(lib.items),
                        "counts": kinds, "shows": shows, "problems": len(lib.problems),
                        "warnings": len(lib.warnings), "last_scan": lib.last_scan,
                        "last_scan_seconds": lib.last_scan_seconds, "scanning": self.scanning(name),
                        "scan": scan.snapshot() if scan is not None else None})
        return out

    def _counts(self, lib: Library) -> tuple[dict[str, int], int]:
        """Items per kind and the number of shows, counted once per version (the console asks each second)."""
        cached = lib.__dict__.get("_counts")
        if cached is not None and cached[0] == (lib.version, len(lib.items)):
            return cached[1]
        kinds: dict[str, int] = {}
        for it in lib.items.values():
            kinds[it.kind] = kinds.get(it.kind, 0) + 1
        value = (kinds, len(lib.by_show()))
        lib.__dict__["_counts"] = ((lib.version, len(lib.items)), value)
        return value

    def detail(self, name: str) -> dict[str, Any]:
        lib = self.get(name)
        snap = next(s for s in self.snapshot() if s["name"] == name)
        snap["show_list"] = [{"show": s, "episodes": n} for s, n in lib.shows().items()]
        return snap

    def problems(self, name: str) -> dict[str, Any]:
        lib = self.get(name)
        return {"library": name,
                "problems": [{"path": p, "reason": r} for p, r in sorted(lib.problems.items())],
                "warnings": [{"path": p, "reason": r} for p, r in sorted(lib.warnings.items())]}
