"""Typed configuration loaded from YAML.

Every key is a dataclass field with its default, so the YAML file is optional and
``config/exstreamtv.yaml`` only documents the same values. Loading is strict: an
unknown key, a wrong type, a negative number, a missing media path or a duplicate
channel number stops start-up with one ``ConfigError`` that names the key and the
line, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError


class ConfigError(Exception):
    """A configuration problem, with where it is; printed as-is to the operator."""


def _spec(default: Any = dataclasses.MISSING, *, minimum: float | None = 0, choices: tuple[str, ...] | None = None,
          factory: Any = dataclasses.MISSING, doc: str = "") -> Any:
    meta = {"minimum": minimum, "choices": choices, "doc": doc}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = _spec(8411, minimum=1)
    base_url: str | None = None
    api_token: str | None = None
    read_token: str | None = _spec(None, doc="when set, /api/ reads (sessions with client addresses, media "
                                   "paths) need Authorization: Bearer <read_token> (or the api_token)")
    allowed_hosts: list[str] = _spec(factory=list, doc="host names clients may use besides IP addresses, this "
                                     "machine's names and base_url's host; [\"*\"] allows any")
    limit_concurrency: int = _spec(4000, minimum=1, doc="most open connections (also bounded by the open-file "
                                   "limit); at the limit, connections waiting for a request make room")
    max_connections_per_address: int = _spec(256, minimum=1, doc="most open connections from one client address")
    timeout_keep_alive_seconds: int = _spec(5, minimum=1)
    header_timeout_seconds: float = _spec(10.0, minimum=0.1, doc="a client must send its request headers in time")

    def __post_init__(self) -> None:
        if self.port > 65535:
            raise ValueError("port must be between 1 and 65535")
        for name in ("api_token", "read_token"):
            token = getattr(self, name)
            if token is not None and not (token.isascii() and token.isprintable() and token.strip() == token
                                          and token):
                # a header carries latin-1 at best: a non-ASCII token could never match, so nobody could log in
                raise ValueError(f"{name} must be printable ASCII without spaces at either end")


@dataclass
class FFmpegConfig:
    path: str | None = None
    width: int = _spec(1280, minimum=16)
    height: int = _spec(720, minimum=16)
    fps: int = _spec(30, minimum=1)
    preset: str = _spec("veryfast", choices=("ultrafast", "superfast", "veryfast", "faster", "fast", "medium"))
    video_bitrate_kbps: int = _spec(3000, minimum=100)
    audio_bitrate_kbps: int = _spec(128, minimum=32)
    sample_rate: int = _spec(48000, minimum=8000)
    audio_channels: int = _spec(2, minimum=1)
    keyframe_interval_seconds: float = _spec(2.0, minimum=0.5)
    probe_timeout_seconds: float = _spec(20.0, minimum=1)
    start_timeout_seconds: float = _spec(10.0, minimum=1)
    threads: int = _spec(0, minimum=0, doc="x264 threads per encoder; 0 lets x264 choose")


@dataclass
class StreamingConfig:
    channel_grace_seconds: float = _spec(30.0, doc="pipeline keeps running this long after the last viewer leaves")
    lead_seconds: float = _spec(1.0, doc="how far ahead of real time viewers are fed")
    readahead_seconds: float = _spec(3.0, minimum=0.5, doc="how far ahead of release FFmpeg may encode")
    viewer_buffer_seconds: float = _spec(10.0, minimum=1, doc="how far a viewer may fall behind before it skips ahead")
    socket_send_buffer_bytes: int = _spec(524288, minimum=0, doc="kernel send buffer per viewer socket; 0 = OS default")
    timeline_start_seconds: float = _spec(-1.0, minimum=-1.0, doc="where each channel's PTS/PCR timeline starts "
                                          "(the 33-bit clock wraps at 95443.7 s); -1 = where FFmpeg starts")

    @property
    def timeline_start_ticks(self) -> int | None:
        return None if self.timeline_start_seconds < 0 else round(self.timeline_start_seconds * 90_000)


@dataclass
class SessionManagerConfig:
    max_sessions_per_channel: int = _spec(50, minimum=1)
    max_sessions_per_address: int = _spec(16, minimum=1, doc="live streams from one client address")
    idle_timeout_seconds: float = _spec(30.0, minimum=1, doc="a viewer whose socket stays full (not reading) "
                                        "this long is dropped")
    cleanup_interval_seconds: float = _spec(60.0, minimum=0.05)
    idle_after_seconds: float = _spec(10.0, minimum=0.05, doc="a send blocked this long makes the session Idle")
    max_errors: int = _spec(5, minimum=1)
    history_size: int = _spec(100)


@dataclass
class StreamThrottlerConfig:
    enabled: bool = True
    target_bitrate_bps: int = _spec(4_000_000, minimum=1000)
    mode: str = _spec("realtime", choices=("realtime", "burst", "adaptive", "disabled"))
    burst_seconds: float = _spec(10.0, doc="burst mode: seconds of target rate that may go out at 2x")
    adaptive_ceiling_factor: float = _spec(2.0, minimum=1.0)


@dataclass
class AiAutoHealConfig:
    enabled: bool = True
    use_error_screen_fallback: bool = True
    hot_swap_enabled: bool = True
    check_interval_seconds: float = _spec(1.0, minimum=0.05)
    min_error_screen_seconds: float = _spec(2.0, doc="a failure's error screen stays at least this long")


@dataclass
class ErrorScreenSettings:
    visual_mode: str = _spec("slate", choices=("text", "static", "test_pattern", "slate"))
    audio_mode: str = _spec("silent", choices=("silent", "sine_wave", "white_noise", "beep"))
    background_color: str = "#1a1a2e"
    text_color: str = "#ffffff"
    image_path: str | None = None
    title: str = "Technical Difficulties"
    subtitle: str = "Please stand by. The programme will return shortly."

    def __post_init__(self) -> None:
        import re

        for name in ("background_color", "text_color"):
            if not re.fullmatch(r"#[0-9a-fA-F]{6}", getattr(self, name)):
                raise ValueError(f"{name} must be #rrggbb, got {getattr(self, name)!r}")


@dataclass
class HealthConfig:
    degraded_speed: float = _spec(0.95, doc="FFmpeg speed below this (while not held back) is degraded")
    unhealthy_speed: float = _spec(0.8)
    no_progress_seconds: float = _spec(5.0, minimum=0.5, doc="no FFmpeg progress this long: unhealthy")
    lag_degraded_seconds: float = _spec(0.5, doc="output behind the clock by this much: degraded")
    lag_unhealthy_seconds: float = _spec(3.0, doc="output behind the clock by this much: unhealthy")
    history_seconds: float = _spec(300.0, minimum=10)
    start_grace_seconds: float = _spec(10.0, doc="a new FFmpeg's speed is not judged in its first seconds")
    speed_window_seconds: float = _spec(5.0, minimum=1, doc="speed is measured over this window, not since start")
    low_buffer_seconds: float = _spec(1.5, doc="a pipeline is only unhealthy while viewers have less media ahead")


@dataclass
class HdhrConfig:
    tuner_count: int = _spec(4, minimum=1, doc="distinct channels HDHomeRun clients may stream at once")
    friendly_name: str = "EXStreamTV"
    ssdp_enabled: bool = False
    discovery_enabled: bool = _spec(True, doc="answer HDHomeRun network discovery (UDP discovery_port)")
    discovery_port: int = _spec(65001, minimum=1, doc="libhdhomerun's discovery port")


@dataclass
class HlsConfig:
    enabled: bool = _spec(True, doc="serve /hls/channels/{n}/live.m3u8 (segments cut from the same stream)")
    segment_seconds: float = _spec(2.0, minimum=0.5, doc="target segment length; segments are cut at keyframes")
    window_segments: int = _spec(6, minimum=2, doc="segments listed in the live playlist")
    idle_target_durations: float = _spec(3.0, minimum=1, doc="an HLS viewer that fetches nothing for this many "
                                         "target durations has left")
    start_timeout_seconds: float = _spec(20.0, minimum=1, doc="how long a playlist request waits for a cold "
                                         "channel's first segment")


@dataclass
class GuideConfig:
    hours: float = _spec(72.0, minimum=1, doc="how far ahead the XMLTV guide reaches")


@dataclass
class CacheConfig:
    max_gb: float = _spec(20.0, minimum=0.001, doc="the normalised cache's size cap; the least recently aired go")
    pause_below_speed: float = _spec(1.2, minimum=0, doc="cache work waits while a playing channel runs slower than "
                                     "this x real time")


@dataclass
class ProgrammingConfig:
    build_days: float = _spec(4.0, minimum=0.5, doc="scheduled channels' playouts are built (and stored) this far "
                              "ahead; the guide never reaches past it")


@dataclass
class StoreConfig:
    max_events: int = _spec(100_000, minimum=100, doc="events kept in the database")
    max_sessions: int = _spec(100_000, minimum=100, doc="ended sessions kept in the database")


@dataclass
class DatabaseBackupConfig:
    enabled: bool = True
    interval_hours: float = _spec(24.0, minimum=0.001)
    keep_count: int = _spec(7, minimum=1)
    compress: bool = True


@dataclass
class ProcessPoolConfig:
    max_processes: int = _spec(64, minimum=1)
    spawns_per_second: float = _spec(5.0, minimum=0.01)
    spawn_burst: int = _spec(5, minimum=1)
    spawn_wait_seconds: float = _spec(5.0, doc="how long a spawn waits for a rate token before it is rejected")
    memory_limit_percent: float = _spec(85.0, minimum=1)
    memory_per_process_mb: int = _spec(200, minimum=1)
    fd_reserve: int = _spec(100)
    fds_per_process: int = _spec(12, minimum=1)
    zombie_check_interval_seconds: float = _spec(30.0, minimum=0.05)
    stall_timeout_seconds: float = _spec(30.0, minimum=0.5)
    max_runtime_hours: float = _spec(24.0, minimum=0.0001)
    kill_timeout_seconds: float = _spec(5.0, minimum=0.05)
    background_spawns_per_second: float = _spec(20.0, minimum=0.01)
    background_max_processes: int = _spec(2, minimum=1)
    cpu_guard: bool = _spec(True, doc="refuse a new encoding channel (error screen) when CPU headroom is gone")
    cpu_guard_percent: float = _spec(90.0, minimum=10, doc="share of all cores channels may use, together")


@dataclass
class CircuitBreakerConfig:
    failure_threshold: int = _spec(5, minimum=1)
    window_seconds: float = _spec(300.0, minimum=0.001)
    open_seconds: float = _spec(120.0, minimum=0.001)


@dataclass
class RestartGuardConfig:
    max_restarts: int = _spec(10, minimum=1)
    window_seconds: float = _spec(60.0, minimum=0.001)
    channel_cooldown_seconds: float = _spec(30.0)


@dataclass
class LineupEntry:
    """One lineup entry: a file or folder (``path``; a plain string in YAML) or a whole library."""
    path: str | None = None
    library: str | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.library is None):
            raise ValueError("a lineup entry is a path (a string) or {library: NAME}")

    def __str__(self) -> str:
        return self.path if self.path is not None else f"library {self.library}"


@dataclass
class SubtitleConfig:
    languages: list[str] = _spec(factory=list, doc="ISO 639 codes in order of preference")
    mode: str = _spec("off", choices=("off", "forced-only", "always"))


@dataclass
class ProfileOverride:
    """A channel's own output profile: any key left out comes from ``ffmpeg``."""
    width: int | None = _spec(None, minimum=16)
    height: int | None = _spec(None, minimum=16)
    fps: int | None = _spec(None, minimum=1)
    video_bitrate_kbps: int | None = _spec(None, minimum=100)
    audio_bitrate_kbps: int | None = _spec(None, minimum=32)


@dataclass
class CollectionSpec:
    """What a schedule entry plays: any combination narrows it (a smart collection)."""
    library: str | None = None
    show: str | None = None
    season: int | None = None
    genre: str | None = None
    year: str | None = _spec(None, doc="a year or a range: 1990-1999")
    min_rating: float | None = None
    kind: str | None = _spec(None, choices=("movie", "episode", "other"))
    folder: str | None = None
    items: list[str] = _spec(factory=list, doc="a hand-ordered list of files")

    def __post_init__(self) -> None:
        if not any((self.library, self.show, self.genre, self.year, self.kind, self.folder, self.items,
                    self.min_rating is not None, self.season is not None)):
            raise ValueError("a collection needs at least one of library, show, season, genre, year, min_rating, "
                             "kind, folder, items")
        if self.year is not None and not re.fullmatch(r"\d{4}(-\d{4})?", str(self.year).strip()):
            raise ValueError(f"year must be YYYY or YYYY-YYYY, got {self.year!r}")

    def label(self) -> str:
        parts = [f"{k}={v}" for k, v in (("library", self.library), ("show", self.show), ("season", self.season),
                                         ("genre", self.genre), ("year", self.year), ("min_rating", self.min_rating),
                                         ("kind", self.kind), ("folder", self.folder)) if v is not None]
        if self.items:
            parts.append(f"{len(self.items)} items")
        return ", ".join(parts)


@dataclass
class ScheduleEntry:
    collection: CollectionSpec = _spec()
    mode: str = _spec("sequential", choices=("sequential", "shuffle", "random"))
    count: int | None = _spec(None, minimum=1, doc="play this many items (default 1)")
    minutes: float | None = _spec(None, minimum=0.01, doc="play items for about this long")
    flood: bool = _spec(False, doc="play items until the next fixed slot")


@dataclass
class SlotEntry:
    at: str = _spec(doc="HH:MM (or HH:MM:SS), the server's local time")
    collection: CollectionSpec = _spec()
    days: list[str] = _spec(factory=lambda: list(WEEKDAYS))
    mode: str = _spec("sequential", choices=("sequential", "shuffle", "random"))
    count: int | None = _spec(None, minimum=1)
    minutes: float | None = _spec(None, minimum=0.01)
    flood: bool = False

    def __post_init__(self) -> None:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", self.at.strip())
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59 or int(m.group(3) or 0) > 59:
            raise ValueError(f"at must be HH:MM or HH:MM:SS (00:00-23:59:59), got {self.at!r}")
        bad = [d for d in self.days if d.lower()[:3] not in WEEKDAYS]
        if bad or not self.days:
            raise ValueError(f"days must be some of {', '.join(WEEKDAYS)}, got {self.days!r}")
        self.days = [d.lower()[:3] for d in self.days]

    @property
    def second_of_day(self) -> int:
        parts = [int(x) for x in self.at.strip().split(":")] + [0]
        return parts[0] * 3600 + parts[1] * 60 + parts[2]


@dataclass
class FillerConfig:
    collection: CollectionSpec | None = None  # pads gaps and boundaries
    pad_to: int | None = _spec(None, minimum=1, doc="pad after each programme to the next :MM boundary (minutes)")
    pre_roll: CollectionSpec | None = None  # one item before each programme
    post_roll: CollectionSpec | None = None  # one item after each programme
    mid_roll: CollectionSpec | None = None  # one item at each chapter mark of a programme that has chapters
    fallback: CollectionSpec | None = None  # when nothing of the filler fits; else the channel's slate
    guide: str = _spec("separate", choices=("separate", "merged"), doc="filler as its own guide entries, or "
                       "merged into the programme before it")


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class ChannelConfig:
    number: int = _spec(minimum=1)
    name: str = _spec()
    lineup: list[LineupEntry] = _spec(factory=list)
    logo: str | None = None
    group: str | None = None
    audio_languages: list[str] = _spec(factory=list, doc="preferred audio languages (ISO 639), then the file's "
                                       "default track, then the first")
    subtitles: SubtitleConfig = field(default_factory=SubtitleConfig)
    profile: ProfileOverride | None = None
    schedule: list[ScheduleEntry] = _spec(factory=list, doc="replaces lineup: entries played in order, repeated")
    slots: list[SlotEntry] = _spec(factory=list, doc="fixed times of day; they win over the repeating schedule")
    filler: FillerConfig | None = None
    seed: int | None = _spec(None, doc="shuffle/random seed (default: from the channel number)")
    copy: bool = _spec(True, doc="remux programmes whose streams already fit the output profile (no encode)")
    cache: bool = _spec(False, doc="normalise this channel's programmes once, in the background, then air them by copy")
    # problems found while loading (e.g. a lineup path that does not exist): reported and skipped
    # by the engine, never fatal for the other channels
    warnings: list[str] = field(default_factory=list, metadata={"internal": True})

    def __post_init__(self) -> None:
        self.lineup = [e if isinstance(e, LineupEntry) else LineupEntry(path=str(e)) for e in self.lineup]
        self.audio_languages = [normalise_language(x) for x in self.audio_languages]
        self.subtitles.languages = [normalise_language(x) for x in self.subtitles.languages]

    @property
    def paths(self) -> list[str]:
        return [e.path for e in self.lineup if e.path is not None]

    @property
    def libraries(self) -> list[str]:
        return [e.library for e in self.lineup if e.library is not None]


# ISO 639-1 codes people write, to the 639-2 codes media files carry (B and T forms both kept)
_ISO639_1 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita", "pt": "por", "nl": "nld", "sv": "swe",
             "no": "nor", "da": "dan", "fi": "fin", "pl": "pol", "ru": "rus", "ja": "jpn", "zh": "zho", "ko": "kor",
             "ar": "ara", "he": "heb", "hi": "hin", "tr": "tur", "cs": "ces", "el": "ell", "hu": "hun", "ro": "ron"}
_639_B_TO_T = {"fre": "fra", "ger": "deu", "dut": "nld", "chi": "zho", "cze": "ces", "gre": "ell", "rum": "ron",
               "per": "fas", "slo": "slk", "ice": "isl", "mac": "mkd", "may": "msa", "wel": "cym", "arm": "hye",
               "baq": "eus", "bur": "mya", "geo": "kat", "alb": "sqi", "tib": "bod", "mao": "mri"}


def normalise_language(code: str) -> str:
    """``fr``, ``fre`` and ``fra`` are one language: the 639-2/T code (or the code as given, lowercased)."""
    c = code.strip().lower()
    c = _ISO639_1.get(c, c)
    return _639_B_TO_T.get(c, c)


@dataclass
class LibraryConfig:
    name: str = _spec()
    kind: str = _spec(choices=("movies", "shows", "other"))
    paths: list[str] = _spec(factory=list)
    include: list[str] = _spec(factory=list, doc="globs (relative to a root) a file must match; empty: all media")
    exclude: list[str] = _spec(factory=list, doc="globs (relative to a root) of files and folders to skip")
    cache: bool = _spec(False, doc="normalise this library's items in the background (aired by copy)")


@dataclass
class LibraryScanConfig:
    interval_minutes: float = _spec(60.0, doc="rescan every library this often (0: only at start, on "
                                    "`exstreamtv scan` and from the console)")
    max_nfo_bytes: int = _spec(1_048_576, minimum=1024, doc="an NFO larger than this is not read")


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ffmpeg: FFmpegConfig = field(default_factory=FFmpegConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    session_manager: SessionManagerConfig = field(default_factory=SessionManagerConfig)
    stream_throttler: StreamThrottlerConfig = field(default_factory=StreamThrottlerConfig)
    ai_auto_heal: AiAutoHealConfig = field(default_factory=AiAutoHealConfig)
    error_screen: ErrorScreenSettings = field(default_factory=ErrorScreenSettings)
    health: HealthConfig = field(default_factory=HealthConfig)
    hdhr: HdhrConfig = field(default_factory=HdhrConfig)
    hls: HlsConfig = field(default_factory=HlsConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    programming: ProgrammingConfig = field(default_factory=ProgrammingConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    database_backup: DatabaseBackupConfig = field(default_factory=DatabaseBackupConfig)
    process_pool: ProcessPoolConfig = field(default_factory=ProcessPoolConfig)
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    restart_guard: RestartGuardConfig = field(default_factory=RestartGuardConfig)
    libraries: list[LibraryConfig] = field(default_factory=list)
    library_scan: LibraryScanConfig = field(default_factory=LibraryScanConfig)
    channels: list[ChannelConfig] = field(default_factory=list)
    source: str = field(default="<defaults>", metadata={"internal": True})


# ---------------------------------------------------------------- loading

class _Where:
    """Formats 'file:line: key.path' prefixes for messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def at(self, line: int | None, keypath: str) -> str:
        return f"{self.source}:{line}: {keypath}" if line else f"{self.source}: {keypath}"


def _line_of_key(node: Any, key: Any) -> int | None:
    try:
        return node.lc.key(key)[0] + 1
    except Exception:
        return None


def _line_of_item(node: Any, index: int) -> int | None:
    try:
        return node.lc.item(index)[0] + 1
    except Exception:
        return None


def _line_of_node(node: Any) -> int | None:
    try:
        return node.lc.line + 1
    except Exception:
        return None


def _type_name(tp: Any) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, str(tp))


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build(cls: type, node: Any, keypath: str, line: int | None, w: _Where) -> Any:
    if node is None:
        node = {}
    if not isinstance(node, dict):
        raise ConfigError(f"{w.at(line, keypath or '<top level>')}: expected a mapping of keys, got {node!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    kwargs: dict[str, Any] = {}
    for key, value in node.items():
        kline = _line_of_key(node, key) or line
        kp = f"{keypath}.{key}" if keypath else str(key)
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{w.at(kline, kp)}: unknown key (known keys here: {known})")
        f = fields[key]
        kwargs[key] = _value(hints[key], value, f, kp, kline, w)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{w.at(line, keypath or '<top level>')}: missing required key(s): {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(f"{w.at(line, keypath)}: {exc}") from None


def _value(tp: Any, value: Any, f: dataclasses.Field, kp: str, line: int | None, w: _Where) -> Any:
    where = w.at(line, kp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        if value is None:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, kp, line, w)
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp,) = args
        out = []
        for i, item in enumerate(value):
            iline = _line_of_item(value, i) or line
            if item_tp is LineupEntry and not isinstance(item, dict):
                out.append(LineupEntry(path=_convert_scalar(str, item, w.at(iline, f"{kp}[{i}]"))))
            elif dataclasses.is_dataclass(item_tp):
                out.append(_build(item_tp, item, f"{kp}[{i}]", iline, w))
            else:
                out.append(_convert_scalar(item_tp, item, w.at(iline, f"{kp}[{i}]")))
        return out
    if value is None:
        raise ConfigError(f"{where}: a value is required")
    converted = _convert_scalar(tp, value, where)
    minimum = f.metadata.get("minimum", 0)
    if isinstance(converted, (int, float)) and not isinstance(converted, bool) and minimum is not None \
            and converted < minimum:
        what = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise ConfigError(f"{where}: {what}, got {converted}")
    choices = f.metadata.get("choices")
    if choices and converted not in choices:
        raise ConfigError(f"{where}: must be one of {', '.join(choices)}, got {converted!r}")
    return converted


def _check_libraries(cfg: Config, root: Any, w: _Where, base_dir: Path) -> None:
    seq = root.get("libraries") if isinstance(root, dict) else None
    seen: dict[str, int] = {}
    for i, lib in enumerate(cfg.libraries):
        node = seq[i] if isinstance(seq, list) and i < len(seq) else None
        line = _line_of_key(node, "name") if node is not None else None
        if not lib.name.strip():
            raise ConfigError(f"{w.at(line, f'libraries[{i}].name')}: must not be empty")
        if lib.name in seen:
            raise ConfigError(f"{w.at(line, f'libraries[{i}].name')}: duplicate library name {lib.name!r} "
                              f"(also libraries[{seen[lib.name]}])")
        seen[lib.name] = i
        if not lib.paths:
            raise ConfigError(f"{w.at(line, f'libraries[{i}].paths')}: a library needs at least one folder")
        lib.paths = [str(p if p.is_absolute() else base_dir / p) for p in (Path(x).expanduser() for x in lib.paths)]


def _check_programming(cfg: Config, ch: ChannelConfig, node: Any, i: int, w: _Where) -> None:
    """Library names exist; slots do not overlap (same day, same time)."""
    libraries = {lib.name for lib in cfg.libraries}

    def check(spec: CollectionSpec | None, where: str, n: Any) -> None:
        if spec is not None and spec.library is not None and spec.library not in libraries:
            known = ", ".join(sorted(libraries)) or "none are configured"
            raise ConfigError(f"{w.at(_line_of_node(n) if n is not None else None, where)}: unknown library "
                              f"{spec.library!r} (libraries: {known})")

    for key, entries in (("schedule", ch.schedule), ("slots", ch.slots)):
        seq = node.get(key) if node is not None else None
        for j, e in enumerate(entries):
            n = seq[j] if isinstance(seq, list) and j < len(seq) else None
            check(e.collection, f"channels[{i}].{key}[{j}].collection.library", n)
    if ch.filler is not None:
        fn = node.get("filler") if node is not None else None
        for name in ("collection", "pre_roll", "post_roll", "mid_roll", "fallback"):
            check(getattr(ch.filler, name), f"channels[{i}].filler.{name}.library", fn)
    seen: dict[tuple[str, int], int] = {}
    seq = node.get("slots") if node is not None else None
    for j, s in enumerate(ch.slots):
        for d in s.days:
            other = seen.get((d, s.second_of_day))
            if other is not None:
                n = seq[j] if isinstance(seq, list) and j < len(seq) else None
                raise ConfigError(f"{w.at(_line_of_node(n) if n is not None else None, f'channels[{i}].slots[{j}]')}"
                                  f": overlaps slots[{other}] ({d} {s.at})")
            seen[(d, s.second_of_day)] = j


def _check_channels(cfg: Config, root: Any, w: _Where, base_dir: Path) -> None:
    seq = root.get("channels") if isinstance(root, dict) else None
    seen: dict[int, int] = {}
    for i, ch in enumerate(cfg.channels):
        node = seq[i] if isinstance(seq, list) and i < len(seq) else None
        line = _line_of_key(node, "number") if node is not None else None
        if ch.number in seen:
            raise ConfigError(f"{w.at(line, f'channels[{i}].number')}: duplicate channel number {ch.number} "
                              f"(also channels[{seen[ch.number]}])")
        seen[ch.number] = i
        if not ch.name.strip():
            raise ConfigError(f"{w.at(_line_of_key(node, 'name') if node is not None else None, f'channels[{i}].name')}"
                              ": must not be empty")
        if not ch.lineup and not ch.schedule and not ch.slots:
            raise ConfigError(f"{w.at(line, f'channels[{i}].lineup')}: a channel needs a lineup (files, folders, "
                              "libraries) or a schedule")
        if ch.lineup and (ch.schedule or ch.slots):
            raise ConfigError(f"{w.at(line, f'channels[{i}].schedule')}: a channel has a lineup or a schedule "
                              "(with slots), not both")
        _check_programming(cfg, ch, node, i, w)
        lineup_node = node.get("lineup") if node is not None else None
        libraries = {lib.name for lib in cfg.libraries}
        for j, entry in enumerate(ch.lineup):
            iline = _line_of_item(lineup_node, j) if lineup_node is not None else None
            if entry.library is not None:
                if entry.library not in libraries:
                    known = ", ".join(sorted(libraries)) or "none are configured"
                    raise ConfigError(f"{w.at(iline, f'channels[{i}].lineup[{j}].library')}: unknown library "
                                      f"{entry.library!r} (libraries: {known})")
                continue
            p = Path(entry.path or "").expanduser()
            if not p.is_absolute():
                p = base_dir / p
            if not p.exists():
                ch.warnings.append(f"{w.at(iline, f'channels[{i}].lineup[{j}]')}: media path does not exist: {p}")
            entry.path = str(p)
        if ch.logo:
            lp = Path(ch.logo).expanduser()
            if not lp.is_absolute():
                lp = base_dir / lp
            if not lp.is_file():
                lline = _line_of_key(node, "logo") if node is not None else None
                raise ConfigError(f"{w.at(lline, f'channels[{i}].logo')}: logo file does not exist: {lp}")
            ch.logo = str(lp)


ENV_OVERRIDES: dict[str, tuple[str, str, type]] = {
    "EXSTREAMTV_MAX_SESSIONS": ("session_manager", "max_sessions_per_channel", int),
    "EXSTREAMTV_MAX_SESSIONS_PER_ADDRESS": ("session_manager", "max_sessions_per_address", int),
    "EXSTREAMTV_THROTTLE_BITRATE": ("stream_throttler", "target_bitrate_bps", int),
    "EXSTREAMTV_THROTTLE_MODE": ("stream_throttler", "mode", str),
    "EXSTREAMTV_HOST": ("server", "host", str),
    "EXSTREAMTV_PORT": ("server", "port", int),
    "EXSTREAMTV_API_TOKEN": ("server", "api_token", str),
    "EXSTREAMTV_READ_TOKEN": ("server", "read_token", str),
}


def _apply_env(cfg: Config, env: typing.Mapping[str, str]) -> None:
    for var, (section, key, tp) in ENV_OVERRIDES.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        sect = getattr(cfg, section)
        f = next(f for f in dataclasses.fields(sect) if f.name == key)
        try:
            value: Any = tp(raw.strip()) if tp is not str else raw
        except ValueError:
            raise ConfigError(f"environment {var}={raw!r}: expected {_type_name(tp)}") from None
        value = _value(tp, value, f, f"{section}.{key}", None, _Where(f"environment {var}"))
        setattr(sect, key, value)
        post = getattr(sect, "__post_init__", None)
        if post is not None:
            try:
                post()
            except ValueError as exc:
                raise ConfigError(f"environment {var}: {exc}") from None
    if not 1 <= cfg.server.port <= 65535:
        raise ConfigError(f"server.port must be between 1 and 65535, got {cfg.server.port}")


def load_config(path: str | Path | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (or the defaults when None), then apply environment overrides."""
    env = os.environ if env is None else env
    if path is None:
        cfg = Config()
        _apply_env(cfg, env)
        return cfg
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc}") from None
    return parse_config(text, str(p), base_dir=p.parent, env=env)


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None,
                 env: typing.Mapping[str, str] | None = None) -> Config:
    env = os.environ if env is None else env
    w = _Where(source)
    yaml = YAML(typ="rt")
    try:
        root = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ConfigError(f"{w.at(line, 'YAML syntax')}: {exc.problem or exc.context}") from None
    except Exception as exc:  # ruamel raises a few unmarked kinds (duplicate keys, ...)
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    if root is None:
        root = CommentedMap()
    if not isinstance(root, (CommentedMap, dict)):
        raise ConfigError(f"{source}: the top level must be a mapping of sections, got {type(root).__name__}")
    cfg = _build(Config, root, "", _line_of_node(root), w)
    cfg.source = source
    _check_libraries(cfg, root, w, base_dir or Path.cwd())
    _check_channels(cfg, root, w, base_dir or Path.cwd())
    _apply_env(cfg, env)
    return cfg


def config_to_dict(cfg: Any) -> Any:
    """Plain dict of a config (for the API and for comparing the documented file with the defaults)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                if not f.metadata.get("internal")}
    if isinstance(cfg, list):
        return [config_to_dict(x) for x in cfg]
    return cfg


__all__ = ["Config", "ConfigError", "ChannelConfig", "LineupEntry", "LibraryConfig", "normalise_language", "load_config", "parse_config", "config_to_dict",
           "ENV_OVERRIDES"]
