"""Channels from their config: lineups (files, folders, libraries) composed into schedules,
scheduled channels' playouts, the background probe of files the cache does not know, and what
the normalised cache should hold. A mixin of the Engine (these read and write its state)."""

from __future__ import annotations

import asyncio
import logging

from ..config import ChannelConfig
from ..guards.circuit_breaker import CircuitBreaker
from ..guards.process_pool import SpawnRejected
from ..pipeline.channel import Channel
from .lineup import LineupPart, compose, library_items
from .media import MediaError, MediaInfo, scan_lineup
from .schedule import Schedule

log = logging.getLogger("exstreamtv.engine")


class ChannelLineups:
    async def _add_channel(self, cc: ChannelConfig, epochs: dict[int, float]) -> None:
        if cc.schedule or cc.slots:  # programmed: a playout from collections, slots and filler
            breaker = CircuitBreaker(cc.number, self.config.circuit_breaker, self.clock, self._on_breaker)
            self.breakers[cc.number] = breaker
            ch = Channel(cc, self, breaker, self.config.streaming, self.config.ffmpeg, None, None)
            ch.hls_config = self.config.hls
            self.channels[cc.number] = ch
            playout = self.programming.build(ch)
            if playout is not None:
                ch.set_schedule(playout, None)
            return
        parts: list[LineupPart] = []
        files: list[str] = []
        problems: list[tuple[str, str]] = []
        for entry in cc.lineup:
            if entry.library is not None:
                parts.append(LineupPart(library=entry.library))
                continue
            found, bad = await asyncio.to_thread(scan_lineup, [entry.path])
            parts.append(LineupPart(files=found))
            files.extend(found)
            problems.extend(bad)
        breaker = CircuitBreaker(cc.number, self.config.circuit_breaker, self.clock, self._on_breaker)
        self.breakers[cc.number] = breaker
        ch = Channel(cc, self, breaker, self.config.streaming, self.config.ffmpeg, None, None)
        ch.hls_config = self.config.hls
        ch.lineup_parts = parts
        self.channels[cc.number] = ch
        for warning in cc.warnings:
            self.events.emit("config_warning", f"configuration: {warning} (skipped; the other entries play)",
                             cc.number, level=logging.WARNING)
        for path, reason in problems:
            ch.report_media_problem(path, reason)
        infos: dict[str, MediaInfo] = {}
        todo: list[str] = []
        for path in files:
            try:
                info = self.probe.cached(path)
            except MediaError as exc:
                ch.report_media_problem(path, exc.reason)
                continue
            if info is None:
                todo.append(path)
            else:
                infos[path] = info
        if todo:
            ch.set_scanning(len(todo))
            self.scan.add(ch.number, files, todo, infos)
        else:
            self._build_schedule(ch, files, infos, epochs)

    def _build_schedule(self, ch: Channel, files: list[str], infos: dict[str, MediaInfo],
                        epochs: dict[int, float] | None = None) -> None:
        ch.lineup_infos = infos
        items = compose(ch.lineup_parts, infos, self.libraries.libraries)
        waiting = [p.library for p in ch.lineup_parts if p.library is not None
                   and self.libraries.get(p.library).last_scan is None]
        if not items and waiting:  # a library never scanned yet: on air when its first scan ends
            ch.set_scanning(0)
            ch.waiting_for = f"library {', '.join(waiting)} is being scanned"
            return
        epoch = (epochs if epochs is not None else self.store.epochs()).get(ch.number)
        if epoch is None:  # a new channel's schedule starts now, and stays put across restarts
            epoch = self.clock.time()
            self.store.set_epoch(ch.number, epoch)
        schedule = Schedule(items, epoch) if items else None
        problems = list(ch.media_problems.items())
        reason = None if schedule else ("no playable media: " + "; ".join(f"{p}: {r}" for p, r in problems[:3])
                                        if problems else "no media files in the lineup")
        if schedule is not None and ch.schedule is not None and ch.running:
            # the lineup changed under a running channel (a library rescan): what is on air stays on
            # air, the rest follows it; the guide and the stored epoch follow
            slot = ch.schedule.at(self.clock.time())
            at = next((i for i, it in enumerate(items) if it.path == slot.item.path), None)
            if at is not None:
                schedule = schedule._reanchored(items, at, slot.start) or schedule
            ch.set_schedule(schedule, None)
            self.schedule_changed(ch, schedule)
            return
        ch.set_schedule(schedule, reason)
        if reason:
            self.events.emit("channel_unavailable", f"channel {ch.number} ({ch.name}): {reason}", ch.number,
                             level=logging.WARNING)

    async def _scan_pending(self) -> None:
        """Probe what the cache did not know, channel by channel, concurrently within the pool's
        background budget; each channel goes on air as soon as its files are known."""
        scan = self.scan
        last_log = self.clock.monotonic()
        try:
            for number, files, todo, infos in scan.take():
                ch = self.channels.get(number)
                if ch is None:
                    continue

                async def one(path: str) -> None:
                    try:
                        infos[path] = await self.probe.probe(path)
                    except MediaError as exc:
                        ch.report_media_problem(path, exc.reason)
                        scan.failed += 1
                    except SpawnRejected as exc:
                        if self._stopping:
                            return
                        ch.report_media_problem(path, f"could not be probed: {exc}")
                        scan.failed += 1
                    scan.done += 1
                    ch.scan_done += 1

                pending = [asyncio.ensure_future(one(p)) for p in todo]
                while pending:
                    _, still = await asyncio.wait(pending, timeout=2.0)
                    pending = list(still)
                    now = self.clock.monotonic()
                    if now - last_log >= 5:
                        last_log = now
                        self.probe.flush()
                        log.info("probing media: %s", scan.describe(now))
                self._build_schedule(ch, files, infos)
                self.probe.flush()
        finally:
            self.probe.flush()
            scan.finished_at = self.clock.monotonic()
        self.events.emit("scan_finished", f"media probed: {scan.done} file(s), {scan.failed} unplayable, in "
                         f"{scan.finished_at - scan.started_at:.1f}s")
        self.want_cached()

    def cache_applies(self, ch: Channel, item) -> bool:
        """Is ``item`` normalised for ``ch``? (``cache: true`` on the channel or the item's library)"""
        if ch.cfg.cache:
            return True
        lib = getattr(item.meta, "library", None)
        return any(c.name == lib and c.cache for c in self.config.libraries) if lib else False

    def want_cached(self) -> None:
        """Queue what the cache should hold: each caching channel's next day (soonest first), then
        every item of a caching library."""
        now = self.clock.time()
        for ch in sorted(self.channels.values(), key=lambda c: c.number):
            if ch.schedule is None:
                continue
            slots = ch.schedule.upcoming(now, 86400)[:500]
            self.cache.want([s.item for s in slots if s.kind != "slate" and self.cache_applies(ch, s.item)])
        for lc in self.config.libraries:
            if lc.cache and lc.name in self.libraries.libraries:
                self.cache.want(library_items(self.libraries.get(lc.name)))

    def ensure_probing(self) -> None:
        """Probe what channels added later (a reload) wait for, if the start-up probe has ended."""
        if self.scan.pending and (self._scan_task is None or self._scan_task.done()):
            self.scan.finished_at = None
            self._scan_task = asyncio.get_running_loop().create_task(self._scan_pending(), name="media-scan")

    def _library_changed(self, name: str) -> None:
        """A scan changed a library: the channels that play it get the new lineup."""
        self.artwork.register(self.libraries.get(name).items.values())
        self.want_cached()
        for ch in self.channels.values():
            if ch.cfg.schedule or ch.cfg.slots:
                self.programming.library_changed(ch)
            elif any(p.library == name for p in ch.lineup_parts):
                ch.waiting_for = None
                self._build_schedule(ch, [], ch.lineup_infos)
        self.guide.invalidate()
