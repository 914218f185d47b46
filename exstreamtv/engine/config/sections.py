"""The engine's configuration sections: server, FFmpeg, streaming, sessions, guards, guide, caches."""

from __future__ import annotations

from dataclasses import dataclass

from .spec import _spec


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

