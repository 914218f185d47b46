"""Live reload: the config is read again and the running server follows it.

Added channels appear; removed channels show their viewers an error screen saying so, then
close; changed channels switch at their next programme boundary (what is on air finishes);
viewers of unchanged channels see nothing. Libraries added or changed are scanned. A bad
config keeps the running one and says what is wrong (file, line, key). Sections that need a
restart (server address, FFmpeg profile, ...) are reported, not applied.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("exstreamtv.reload")
LIVE_SECTIONS = ("channels", "libraries", "library_scan", "source")
REMOVED_NOTICE_SECONDS = 5.0


def config_file(engine: "Engine") -> Path | None:
    src = engine.config.source
    p = Path(src)
    return p if not src.startswith("<") and p.exists() else None


async def reload_from_file(engine: "Engine") -> dict[str, Any]:
    path = config_file(engine)
    if path is None:
        msg = ("no config file to reload: this server runs on the built-in defaults"
               if engine.config.source.startswith("<") else f"{engine.config.source}: config file not found")
        engine.events.emit("config_reload_failed", f"reload: {msg}", None, level=logging.WARNING)
        return {"ok": False, "error": msg}
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        engine.events.emit("config_reload_failed", f"reload refused, the running config stays: {exc}", None,
                           level=logging.ERROR, error=str(exc))
        return {"ok": False, "error": str(exc)}
    return await apply(engine, new)


async def apply(engine: "Engine", new: Config) -> dict[str, Any]:
    old = engine.config
    restart = [f.name for f in dataclasses.fields(Config) if f.name not in LIVE_SECTIONS
               and getattr(old, f.name) != getattr(new, f.name)]
    old_libs = {lib.name: lib for lib in old.libraries}
    # libraries first: channels may name new ones
    libs = engine.libraries
    rescan = []
    for lib in new.libraries:
        if old_libs.get(lib.name) != lib:
            rescan.append(lib.name)
    libs.reconfigure(new.libraries, new.library_scan)
    current = {n: ch.cfg for n, ch in engine.channels.items()}  # what runs now (demo channels too)
    target = current if engine.demo and not new.channels else {c.number: c for c in new.channels}
    added = sorted(set(target) - set(current))
    removed = sorted(set(current) - set(target))
    changed = sorted(n for n in set(current) & set(target) if current[n] != target[n])
    if new.channels or not engine.demo:  # (the demo channels stay until a config names channels)
        engine.config.channels = list(new.channels)
        engine.demo = False
    engine.config.libraries = new.libraries
    engine.config.library_scan = new.library_scan
    for n in removed:
        _remove(engine, n)
    epochs = engine.store.epochs() if engine.store is not None else {}
    for n in added:
        await engine._add_channel(target[n], epochs)
        engine.events.emit("channel_added", f"channel {n} ({target[n].name}) added by reload", n)
    for n in changed:
        await _change(engine, engine.channels[n], target[n], epochs)
    engine.ensure_probing()
    engine.want_cached()
    for name in rescan:
        libs.scan(name)
    engine.guide.invalidate()
    summary = {"ok": True, "added": added, "removed": removed, "changed": changed,
               "unchanged": sorted(set(current) & set(target) - set(changed)),
               "libraries_rescanned": rescan, "needs_restart": restart}
    engine.events.emit("config_reloaded", "reload: " + ", ".join(
        f"{k} {v}" for k, v in summary.items() if k in ("added", "removed", "changed") and v) + (
        f"; needs a restart to apply: {', '.join(restart)}" if restart else "") if any(
        summary[k] for k in ("added", "removed", "changed")) or restart else "reload: nothing changed", None,
        **{k: v for k, v in summary.items() if k != "ok"})
    return summary


async def _change(engine: "Engine", ch, cc, epochs: dict[int, float]) -> None:
    """The channel's programming changed: the new one starts at the next programme boundary."""
    ch.cfg = cc
    ch.name = cc.name
    if cc.schedule or cc.slots:
        playout = engine.programming.build(ch)
        if playout is not None:
            ch.set_schedule(playout, None)
            engine.schedule_changed(ch, playout)
    else:
        from .onair.lineup import LineupPart
        from .onair.media import MediaError, scan_lineup

        parts, files, infos = [], [], {}
        for entry in cc.lineup:
            if entry.library is not None:
                parts.append(LineupPart(library=entry.library))
                continue
            found, problems = await asyncio.to_thread(scan_lineup, [entry.path])
            parts.append(LineupPart(files=found))
            files.extend(found)
            for path, reason in problems:
                ch.report_media_problem(path, reason)
        for f in files:
            try:
                info = engine.probe.cached(f)
            except MediaError as exc:
                ch.report_media_problem(f, exc.reason)
                continue
            if info is None:
                try:
                    info = await engine.probe.probe(f)
                except MediaError as exc:
                    ch.report_media_problem(f, exc.reason)
                    continue
            infos[f] = info
        ch.lineup_parts = parts
        engine._build_schedule(ch, files, infos, epochs)
    engine.events.emit("channel_changed", f"channel {ch.number} ({ch.name}) changed by reload: the new programming "
                       "starts at the next programme boundary", ch.number)


def _remove(engine: "Engine", number: int) -> None:
    ch = engine.channels.get(number)
    if ch is None:
        return
    engine.events.emit("channel_removed", f"channel {number} ({ch.name}) removed by reload", number)
    if ch.running:
        ch.show_slate(REMOVED_NOTICE_SECONDS + 5, {"title": "This channel has been removed",
                                                   "subtitle": "Please choose another channel"})
    asyncio.get_running_loop().create_task(_close_later(engine, number, ch), name=f"remove-{number}")
    del engine.channels[number]  # no new viewers from now on; the guide and playlists drop it


async def _close_later(engine: "Engine", number: int, ch) -> None:
    if ch.running:
        await asyncio.sleep(REMOVED_NOTICE_SECONDS)
    for s in engine.sessions.sessions(number, include_disconnected=False):
        engine.sessions.disconnect(s, "channel removed")
    await ch.stop()
    if engine.channels.get(number) is None:
        engine.breakers.pop(number, None)
