"""The Engine: owns channels, the process pool, breakers, guards, sessions and events.

It is the one object the HTTP server and the console talk to. Time, system readings
and process spawning are injected (via the pool), so the same object runs in tests and
for real.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import logging
from pathlib import Path
from typing import Any

from .pipeline.channel import Channel, ChannelState, Viewer
from .state.backup import backup, list_backups
from .guards.circuit_breaker import BreakerState, CircuitBreaker
from .clock import Clock, SystemClock
from .config import Config
from .onair.demo import ensure_demo_media
from .pipeline.error_screens import ErrorScreenConfig, ErrorScreenMessage, get_error_screen_generator
from .observe.events import Event, EventLog
from .onair.guide import GuideCache
from .ffmpeg.binary import FFmpegBinary, find_ffmpeg
from .ffmpeg.command import OutputProfile
from .guards.health import HealthMonitor
from .observe.loop_lag import LoopLagMonitor
from .onair.media import MediaProbe
from .onair.scan import ScanProgress
from .guards.process_pool import ProcessPoolManager, SystemReadings
from .guards.restart_guard import RestartDecision, RestartGuard
from .guards.capacity import Capacity
from .library.artwork import Artwork
from .onair.lineups import ChannelLineups
from .iptv import IptvFeeds
from .guards.autoheal import AutoHeal
from .pipeline.normal_cache import NormalisedCache
from .programming.playout import Playout
from .programming.service import Programming
from .library.manager import LibraryManager, release_freed_memory
from .onair.schedule import Schedule
from .stream.hls_viewers import HlsViewers
from .sessions import SessionManager
from .state.store import Store

DB_NAME = "exstreamtv.db"
LOCK_NAME = "exstreamtv.lock"

log = logging.getLogger("exstreamtv.engine")


class StateError(Exception):
    """The state database cannot be used (damaged): the message names the file and the remedy."""


class DataDirBusy(Exception):
    pass


class UnknownChannel(KeyError):
    def __init__(self, channel_id: Any) -> None:
        super().__init__(channel_id)
        self.channel_id = channel_id

    def __str__(self) -> str:
        return f"unknown channel {self.channel_id}"


PRESET_COST = {"ultrafast": 0.45, "superfast": 0.6, "veryfast": 1.0, "faster": 1.3, "fast": 1.8, "medium": 2.2}


def encode_cost_guess(profile: OutputProfile) -> float:
    """Percent of one core an x264 encode of this profile takes, before one is measured
    (about 40% for 720p30 veryfast on a current core)."""
    return 40.0 * profile.width * profile.height * profile.fps / (1280 * 720 * 30) * PRESET_COST.get(profile.preset, 1)


class Engine(ChannelLineups, IptvFeeds, AutoHeal):
    STARTUP_SCAN_WAIT = 1.5  # seconds start() waits for the background probe before serving anyway
    def __init__(self, config: Config, data_dir: Path, clock: Clock | None = None,
                 readings: SystemReadings | None = None, ffmpeg: FFmpegBinary | None = None) -> None:
        self.config = config
        self.data_dir = Path(data_dir).expanduser()
        self.clock = clock or SystemClock()
        self.events = EventLog(self.clock)
        self.breakers: dict[int, CircuitBreaker] = {}
        self.pool = ProcessPoolManager(config.process_pool, self.clock, self.events, readings,
                                       breaker_for=self.breakers.get)
        self.pool.on_long_run = self._on_long_run
        self.guard = RestartGuard(config.restart_guard, self.clock)
        self.sessions = SessionManager(config.session_manager, self.clock, self.events)
        self.profile = OutputProfile.from_config(config.ffmpeg)
        self.auto_heal = config.ai_auto_heal
        self.health = HealthMonitor(config.health, config.ai_auto_heal.check_interval_seconds)
        self.error_screens = get_error_screen_generator()
        self.loop_lag = LoopLagMonitor(self.clock, self.events)
        self.guide = GuideCache()
        self.hls = HlsViewers(self)
        self.libraries = LibraryManager(config.libraries, config.library_scan, self.data_dir, self.clock, self.events)
        self.programming = Programming(self)
        self.cache = NormalisedCache(self)
        pp = config.process_pool
        readings_cpu = getattr(self.pool.readings, "cpu_percent", None)
        self.capacity = Capacity(None, pp.cpu_guard_percent, pp.cpu_guard, readings_cpu or (lambda: 0.0),
                                 encode_cost_guess(self.profile))
        self.artwork = Artwork(self.data_dir / "artwork", lambda: self.ffmpeg_path, self._run_tool("artwork"))
        self._logo_renders: dict[Path, asyncio.Future] = {}
        self._health_task: asyncio.Task | None = None
        self._device_id: str | None = None
        self.store: Store | None = None
        self._backup_task: asyncio.Task | None = None
        self._scan_task: asyncio.Task | None = None
        self.scan = ScanProgress(self.clock)
        self.probe: MediaProbe | None = None
        self._lock_file = None
        self.ffmpeg = ffmpeg
        self.channels: dict[int, Channel] = {}
        self.started_mono: float | None = None
        self.started_wall: float | None = None
        self.demo = False
        self._stopping = False

    @property
    def ffmpeg_path(self) -> str:
        assert self.ffmpeg is not None, "engine not started"
        return self.ffmpeg.path

    # ------------------------------------------------------------ start / stop
    def _open_store(self) -> Store:
        """The state database, or ``StateError`` naming the file and the remedy."""
        db = self.data_dir / DB_NAME
        backups = list_backups(self.data_dir / "backups")
        remedy = (f"restore the newest backup with: exstreamtv restore {backups[-1]}" if backups else
                  "no backup exists; move the file away to start with fresh state")
        empty = db.exists() and db.stat().st_size == 0 and not Path(str(db) + "-wal").exists()
        try:
            store = Store(db, self.config.store.max_events, self.config.store.max_sessions)
            store.epochs()
            store.recent_events(1)
        except sqlite3.DatabaseError as exc:
            raise StateError(f"{db}: the state database is damaged ({exc}); {remedy}") from None
        loop = asyncio.get_running_loop()
        store.on_change = lambda ok, msg: loop.call_soon_threadsafe(
            self.events.emit, "store_ok" if ok else "store_failing", msg, None,
            level=logging.WARNING if ok else logging.ERROR)
        if empty:
            self.events.emit("state_lost", f"{db} was empty (0 bytes): schedules start again from now; to keep "
                             f"the guide's promises, stop the server and {remedy}", None, level=logging.ERROR)
        return store

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        self.store = self._open_store()
        self.events.seed([Event(e["id"], e["timestamp"], e["kind"], e["message"], e["channel_id"], e["data"])
                          for e in sorted(self.store.recent_events(2000, viewers=False) +
                                          self.store.recent_events(2000, viewers=True), key=lambda e: e["id"])])
        for msg in self.store.bad_rows:
            self.events.emit("state_warning", msg, None, level=logging.WARNING)
        self.events.add_listener(lambda ev: self.store.add_event(ev.to_dict()))
        self.sessions.on_ended = lambda s: self.store.add_session(s.to_dict(self.clock.monotonic()))
        if self.ffmpeg is None:
            self.ffmpeg = await asyncio.to_thread(find_ffmpeg, self.config.ffmpeg.path)
        log.info("using FFmpeg %s at %s (from %s)", self.ffmpeg.version, self.ffmpeg.path, self.ffmpeg.origin)
        self.loop_lag.start()
        self.pool.start()
        self.sessions.start()
        self.error_screens.configure(self.ffmpeg_path, self.pool, self.data_dir / "tmp" / "error-screens")
        channel_cfgs = list(self.config.channels)
        if not channel_cfgs:
            self.demo = True
            channel_cfgs = await ensure_demo_media(self.ffmpeg_path, self.data_dir, self._run_tool("demo"))
        self.probe = MediaProbe(self.ffmpeg_path, self.data_dir / "probe-cache.json", self._run_tool("probe"))
        self.libraries.probe = self.probe
        await asyncio.to_thread(self.libraries.load)  # what the last scans found: serving never waits for one
        for lib in self.libraries.libraries.values():
            self.artwork.register(lib.items.values())
        self.libraries.on_changed = self._library_changed
        epochs = self.store.epochs()
        for cc in channel_cfgs:  # from the probe cache at once; the rest is probed in the background
            await self._add_channel(cc, epochs)
        self.libraries.scan_all()  # new and changed files, in the background
        self.libraries.start_interval()
        self.cache.start()
        self.want_cached()
        release_freed_memory()  # start-up's transient objects (caches read from JSON)
        self.started_mono = self.clock.monotonic()
        self.started_wall = self.clock.time()
        loop = asyncio.get_running_loop()
        self._health_task = loop.create_task(self._health_loop(), name="health")
        if self.scan.pending:
            self._scan_task = loop.create_task(self._scan_pending(), name="media-scan")
            # a small library is ready at once; a large one never holds up serving
            await asyncio.wait({self._scan_task}, timeout=self.STARTUP_SCAN_WAIT)
        if self.config.database_backup.enabled:
            self._backup_task = loop.create_task(self._backup_loop(), name="backup")
        self.events.emit("engine_started", f"engine started with {len(self.channels)} channel(s)"
                         + (" (demo)" if self.demo else "")
                         + (f"; probing {self.scan.total} new media file(s) in the background" if self.scan.total
                            else ""))

    def _lock_data_dir(self) -> None:
        """One server per data dir (and ``exstreamtv restore`` refuses while one runs)."""
        self._lock_file = open(self.data_dir / LOCK_NAME, "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            self._lock_file = None
            raise DataDirBusy(f"another EXStreamTV server is running on {self.data_dir}") from None
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def _run_tool(self, role: str):
        """A runner for short FFmpeg jobs (probe, demo clips) through the pool."""

        async def run(argv: list[str]) -> tuple[int, str]:
            mp = await self.pool.spawn(argv, channel_id=None, role=role, background=True)
            try:
                timeout = self.config.ffmpeg.probe_timeout_seconds if role == "probe" else 300
                _, err = await asyncio.wait_for(mp.proc.communicate(), timeout)
                return mp.proc.returncode or 0, err.decode("utf-8", "replace")
            except asyncio.TimeoutError:
                await self.pool.terminate(mp, "timeout")
                return -1, f"timed out after {timeout:g}s"
            finally:
                if mp.returncode is None:
                    await self.pool.terminate(mp, "cancelled")
                self.pool.release(mp)

        return run

    async def stop(self) -> None:
        """Graceful stop: viewers disconnected, every channel stopped, every FFmpeg ended."""
        if self._stopping:
            return
        self._stopping = True
        self.loop_lag.stop()
        for task in (self._health_task, self._backup_task, self._scan_task):
            if task is not None:
                task.cancel()
        await self.libraries.stop()
        await self.cache.stop()
        self.sessions.shutdown()
        await asyncio.gather(*(ch.stop() for ch in self.channels.values()), return_exceptions=True)
        await self.pool.shutdown()
        if self.error_screens.pool is self.pool:
            self.error_screens.pool = None  # the shared generator must not keep a stopped pool
        if self.store is not None:
            self.sessions.cleanup()
            await asyncio.to_thread(self.store.close)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        log.info("engine stopped; %d FFmpeg processes left", self.pool.running)

    # ------------------------------------------------------------ channels
    def channel(self, channel_id: Any) -> Channel:
        """The channel numbered ``channel_id`` (an int, or ASCII digits: no ``+1``, ``１`` or ``1_0``)."""
        if isinstance(channel_id, str):
            if not (0 < len(channel_id) <= 9 and channel_id.isascii() and channel_id.isdigit()):
                raise UnknownChannel(channel_id)
        elif isinstance(channel_id, bool) or not isinstance(channel_id, int):
            raise UnknownChannel(channel_id)
        n = int(channel_id)
        ch = self.channels.get(n)
        if ch is None:
            raise UnknownChannel(channel_id)
        return ch

    async def tune(self, channel_id: int) -> Viewer:
        return await self.channel(channel_id).attach()

    def request_channel_restart(self, channel_id: int, source: str = "api", reason: str = "",
                                hot: bool | None = None) -> RestartDecision:
        """The one gate for every restart (API, console, health task, auto-heal, pipeline recovery).

        ``hot`` (default: ``ai_auto_heal.hot_swap_enabled``): the new pipeline starts first and
        viewers switch at its first keyframe.
        """
        ch = self.channel(channel_id)
        decision = self.guard.check(ch.number, self.breakers.get(ch.number))
        if decision.accepted:
            self.events.emit("restart_accepted", f"restart of channel {ch.number} accepted ({source}"
                             + (f": {reason}" if reason else "") + ")", ch.number, source=source)
            if hot is None:
                hot = self.auto_heal.hot_swap_enabled
            if source == "pipeline":
                ch.restarts += 1  # the recovering supervisor proceeds on this decision itself
            elif ch.running:
                ch.restart(hot=hot)
            else:
                ch.restarts += 1  # nothing runs: the next viewer starts it fresh anyway
        else:
            assert decision.reason is not None
            self.events.emit("restart_refused", f"restart of channel {ch.number} refused: {decision.reason.value}, "
                             f"retry in {decision.retry_after_seconds:.1f}s ({source})", ch.number,
                             level=logging.WARNING, source=source, reason=decision.reason.value,
                             retry_after_seconds=round(decision.retry_after_seconds, 3))
        return decision

    async def wait_scanned(self, timeout: float | None = None) -> bool:
        """Wait until the background probe is done (tests, ``exstreamtv scan``)."""
        if self._scan_task is None:
            return True
        done, _ = await asyncio.wait({self._scan_task}, timeout=timeout)
        return bool(done)

    def schedule_changed(self, channel: Channel, schedule: Schedule) -> None:
        self.guide.invalidate()
        if isinstance(schedule, Playout):
            self.programming.save(channel, schedule)
            return
        if self.store is not None:
            self.store.replace_epoch(channel.number, schedule.epoch)

    def correct_duration(self, path: str, duration: float) -> None:
        if self.probe is not None:
            self.probe.correct_duration(path, duration)
            self.probe.flush()

    def _on_breaker(self, breaker: CircuitBreaker, old: BreakerState, new: BreakerState, why: str) -> None:
        self.events.emit("breaker_transition", f"breaker of channel {breaker.channel_id}: {old.value} -> "
                         f"{new.value} ({why})", breaker.channel_id,
                         level=logging.WARNING if new is BreakerState.OPEN else logging.INFO,
                         old=old.value, new=new.value)

    def _on_long_run(self, mp) -> None:
        if mp.channel_id is not None and mp.channel_id in self.channels:
            self.request_channel_restart(mp.channel_id, source="long_run_guard",
                                         reason=f"pid {mp.pid} ran too long", hot=True)

    # ------------------------------------------------------------ error screens
    def error_screen_config(self, params: dict[str, Any] | None = None, channel: Channel | None = None
                            ) -> ErrorScreenConfig:
        """The configured error screen in the channel profile, with per-call overrides (validated)."""
        es = self.config.error_screen
        p = params or {}
        return ErrorScreenConfig.for_profile(
            channel.profile if channel is not None else self.profile, visual_mode=p.get("visual_mode") or es.visual_mode,
            audio_mode=p.get("audio_mode") or es.audio_mode,
            background_color=p.get("background_color") or es.background_color,
            text_color=p.get("text_color") or es.text_color, image_path=es.image_path)

    def error_screen_message(self, channel: Channel, reason: str, params: dict[str, Any] | None = None
                             ) -> ErrorScreenMessage:
        es = self.config.error_screen
        p = params or {}
        ret = p.get("return_in")
        breaker = self.breakers.get(channel.number)
        if ret is None and breaker is not None and breaker.state is BreakerState.OPEN:
            ret = breaker.retry_after()
        return ErrorScreenMessage(title=p.get("title") or es.title, subtitle=p.get("subtitle") or es.subtitle,
                                  channel_name=channel.name, channel_number=channel.number,
                                  estimated_return=ret, details=None)

    def error_screen_command(self, channel: Channel, reason: str, duration: float | None,
                             params: dict[str, Any] | None = None) -> list[str] | None:
        """FFmpeg argv of this channel's error screen, or None when error screens are off."""
        explicit = params is not None and ("title" in params or "visual_mode" in params)
        if not explicit and not self.auto_heal.use_error_screen_fallback:
            return None
        try:
            cfg = self.error_screen_config(params, channel)
        except ValueError as exc:
            log.warning("error screen config invalid (%s); using defaults", exc)
            cfg = ErrorScreenConfig.for_profile(channel.profile)
        return self.error_screens.build_command(self.error_screen_message(channel, reason, params), cfg, duration,
                                                logo=channel.cfg.logo)

    def show_error_screen(self, channel_id: int, seconds: float, params: dict[str, Any]) -> None:
        """Put the error screen on air for ``seconds`` (operator slate); raises ValueError on bad params."""
        ch = self.channel(channel_id)
        self.error_screen_config(params)  # validates modes and colours before anything happens
        ch.show_slate(seconds, {**params, "reason": "operator slate"})
        self.events.emit("error_screen", f"error screen on air on channel {ch.number} for {seconds:g}s "
                         "(operator)", ch.number, seconds=seconds)

    # ------------------------------------------------------------ backups
    async def backup_now(self) -> Path:
        cfg = self.config.database_backup
        path = await asyncio.to_thread(backup, self.data_dir / DB_NAME, self.data_dir / "backups", cfg.compress,
                                       cfg.keep_count)
        self.events.emit("backup", f"database backup written: {path.name}", None, file=str(path))
        return path

    async def _backup_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.database_backup.interval_hours * 3600)
            try:
                await self.backup_now()
            except Exception as exc:
                self.events.emit("backup_failed", f"database backup failed: {exc}", None, level=logging.ERROR)

    # ------------------------------------------------------------ reading
    def uptime(self) -> float:
        return 0.0 if self.started_mono is None else self.clock.monotonic() - self.started_mono

    def channels_snapshot(self) -> list[dict[str, Any]]:
        out = []
        counts = self.sessions.live_counts()
        for ch in sorted(self.channels.values(), key=lambda c: c.number):
            snap = ch.snapshot()
            snap["breaker"] = self.breakers[ch.number].snapshot().to_dict()
            snap["breaker_state"] = snap["breaker"]["state"]
            snap["viewers"] = counts.get(ch.number, 0)
            out.append(snap)
        return out


__all__ = ["Engine", "UnknownChannel", "ChannelState"]
