"""ErrorScreenGenerator: what viewers see while a channel cannot play its program.

Visual modes: ``text`` (title/subtitle over a background colour), ``static`` (an image,
the channel logo or a configured file, with text), ``test_pattern`` (SMPTE bars with a
caption), ``slate`` (solid colour, channel ident band, text). Audio: ``silent``,
``sine_wave`` (440 Hz), ``white_noise``, ``beep`` (a short tone every second).

The screens are encoded with the channel's own output profile, so they splice into the
channel's stream like any program. Text never passes through FFmpeg's filter parser: it
goes to drawtext through files with expansion off, so quotes, colons, ``%{``, backslashes
or newlines in a title cannot break the filter or inject options. Fields are cleaned of
control characters and capped at ``MAX_FIELD`` characters (longer text is cut with "…").
A missing font falls back to fontconfig or a bundled font; with none at all the screen
renders without text rather than failing.

The guide's documented API::

    from exstreamtv.streaming.error_screens import (get_error_screen_generator, ErrorScreenMessage,
        ErrorScreenConfig, ErrorVisualMode, ErrorAudioMode)
    generator = get_error_screen_generator()
    async for chunk in generator.generate_error_stream(message, config, duration=30):
        ...  # MPEG-TS bytes
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import logging
import shutil
import tempfile
import threading
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from ..ffmpeg.command import (LavfiSource, OutputProfile, color_value, drawclock, drawtext, find_font,
                             lavfi_command, safe_path)

log = logging.getLogger("exstreamtv.error_screens")

MAX_FIELD = 200


class ErrorVisualMode(str, enum.Enum):
    TEXT = "text"
    STATIC = "static"
    TEST_PATTERN = "test_pattern"
    SLATE = "slate"


class ErrorAudioMode(str, enum.Enum):
    SILENT = "silent"
    SINE_WAVE = "sine_wave"
    WHITE_NOISE = "white_noise"
    BEEP = "beep"


@dataclass
class ErrorScreenMessage:
    title: str = "Technical Difficulties"
    subtitle: str = "Please stand by. We will be right back."
    channel_name: str | None = None
    channel_number: int | None = None
    timestamp: dt.datetime | None = None  # when the problem started; default: now
    estimated_return: dt.datetime | float | None = None  # a time, or seconds from now
    details: str | None = None


@dataclass
class ErrorScreenConfig:
    visual_mode: ErrorVisualMode = ErrorVisualMode.TEXT
    audio_mode: ErrorAudioMode = ErrorAudioMode.SILENT
    background_color: str = "#1a1a2e"
    text_color: str = "#ffffff"
    image_path: str | None = None  # for ``static``; the channel logo when None
    width: int = 1280
    height: int = 720
    fps: int = 30
    sample_rate: int = 48000
    audio_channels: int = 2
    video_bitrate_kbps: int = 1500
    audio_bitrate_kbps: int = 128
    preset: str = "veryfast"
    keyframe_interval: float = 2.0
    sine_frequency: float = 440.0
    font_path: str | None = None

    def __post_init__(self) -> None:
        self.visual_mode = ErrorVisualMode(self.visual_mode)
        self.audio_mode = ErrorAudioMode(self.audio_mode)
        color_value(self.background_color)  # raises ValueError naming the bad colour
        color_value(self.text_color)

    @classmethod
    def for_profile(cls, profile: OutputProfile, **kw) -> "ErrorScreenConfig":
        return cls(width=profile.width, height=profile.height, fps=profile.fps, sample_rate=profile.sample_rate,
                   audio_channels=profile.audio_channels, video_bitrate_kbps=min(profile.video_bitrate_kbps, 1500),
                   audio_bitrate_kbps=profile.audio_bitrate_kbps, preset=profile.preset,
                   keyframe_interval=profile.keyframe_interval, **kw)

    def profile(self) -> OutputProfile:
        return OutputProfile(self.width - self.width % 2, self.height - self.height % 2, self.fps, self.preset,
                             self.video_bitrate_kbps, self.audio_bitrate_kbps, self.sample_rate, self.audio_channels,
                             self.keyframe_interval)


def clean_text(value: object, limit: int = MAX_FIELD) -> str:
    """Printable text: control characters (but newlines) removed, at most ``limit`` characters."""
    text = "" if value is None else str(value)
    text = "".join(ch for ch in text if ch == "\n" or unicodedata.category(ch)[0] != "C")
    text = "\n".join(line.strip() for line in text.splitlines()[:4])
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _when(value: dt.datetime | float | None, now: dt.datetime) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return now + dt.timedelta(seconds=float(value))
    return value


@dataclass
class PreviewImage:
    """One RGB frame (for the console's preview and for tests)."""

    width: int
    height: int
    rgb: bytes = field(repr=False)

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        i = (y * self.width + x) * 3
        return self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]

    def dominant_color(self) -> tuple[int, int, int]:
        counts: dict[tuple[int, int, int], int] = {}
        step = max(1, (self.width * self.height) // 4000)
        for i in range(0, self.width * self.height, step):
            px = (self.rgb[i * 3] & 0xF0, self.rgb[i * 3 + 1] & 0xF0, self.rgb[i * 3 + 2] & 0xF0)
            counts[px] = counts.get(px, 0) + 1
        return max(counts, key=counts.__getitem__)


class ErrorScreenGenerator:
    """Builds error-screen FFmpeg commands and runs them through the process pool."""

    KEEP_TEXT_DIRS = 64

    def __init__(self, ffmpeg_path: str | None = None, pool=None, work_dir: Path | None = None) -> None:
        self.ffmpeg_path = ffmpeg_path
        self.pool = pool
        self._own_tmp = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="exstv-es-"))
        self._dirs: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()
        self.text_failures = 0

    # -- wiring
    def configure(self, ffmpeg_path: str, pool, work_dir: Path) -> None:
        self.ffmpeg_path = ffmpeg_path
        self.pool = pool
        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        self._own_tmp = False

    def _ffmpeg(self) -> str:
        if self.ffmpeg_path is None:
            from ..ffmpeg.binary import find_ffmpeg

            self.ffmpeg_path = find_ffmpeg().path
        return self.ffmpeg_path

    def _pool(self):
        if self.pool is None:
            from ..clock import SystemClock
            from ..config import ProcessPoolConfig
            from ..observe.events import EventLog
            from ..guards.process_pool import ProcessPoolManager

            clock = SystemClock()
            self.pool = ProcessPoolManager(ProcessPoolConfig(), clock, EventLog(clock))
        return self.pool

    # -- text
    def _text_files(self, lines: dict[str, str]) -> dict[str, Path]:
        key = hashlib.sha1(repr(sorted(lines.items())).encode()).hexdigest()[:16]
        with self._lock:
            d = self._dirs.get(key)
            if d is None:
                d = self.work_dir / key
                try:
                    d.mkdir(parents=True, exist_ok=True)
                    for name, text in lines.items():
                        (d / f"{name}.txt").write_text(text, encoding="utf-8")
                except OSError:
                    shutil.rmtree(d, ignore_errors=True)  # never a half-written set
                    raise
                self._dirs[key] = d
                while len(self._dirs) > self.KEEP_TEXT_DIRS:
                    _, old = self._dirs.popitem(last=False)
                    shutil.rmtree(old, ignore_errors=True)
            else:
                self._dirs.move_to_end(key)
        return {name: d / f"{name}.txt" for name in lines}

    def text_fields(self, message: ErrorScreenMessage, now: dt.datetime | None = None) -> dict[str, str]:
        now = now or dt.datetime.now().astimezone()
        started = message.timestamp or now
        ident = " · ".join(x for x in (
            f"Channel {message.channel_number}" if message.channel_number is not None else "",
            clean_text(message.channel_name, 80)) if x)
        ret = _when(message.estimated_return, now)
        info = f"Since {started.strftime('%H:%M:%S')}"
        if ret is not None:
            info += f"  ·  Back at about {ret.strftime('%H:%M:%S')}"
        fields = {"title": clean_text(message.title) or " ", "subtitle": clean_text(message.subtitle) or " ",
                  "ident": ident or " ", "info": info}
        if message.details:
            fields["details"] = clean_text(message.details)
        return fields

    # -- commands
    def source(self, message: ErrorScreenMessage, config: ErrorScreenConfig, duration: float | None,
               logo: str | None = None) -> LavfiSource:
        w, h, r = config.width, config.height, config.fps
        bg = color_value(config.background_color)
        fg = color_value(config.text_color)
        fields = self.text_fields(message)
        try:
            files: dict[str, Path] | None = self._text_files(fields)
        except OSError as exc:  # disk full, no descriptors: a screen without its text beats no screen
            self.text_failures += 1
            log.warning("error screen text could not be written (%s): showing it without text", exc)
            files = None
        font = config.font_path or find_font()

        def fit(size: int, name: str) -> int:  # long lines get a smaller font so they stay on screen
            longest = max((len(x) for x in fields[name].splitlines()), default=1)
            return max(8, min(size, int(w * 1.8 / max(1, longest))))

        big, mid, small = fit(max(12, h // 12), "title"), fit(max(10, h // 22), "subtitle"), max(8, h // 30)
        mode = config.visual_mode
        image = config.image_path or logo
        if mode is ErrorVisualMode.STATIC and not (image and Path(image).is_file()):
            log.warning("static error screen without a usable image (%r); showing text instead", image)
            mode = ErrorVisualMode.TEXT
        if mode is ErrorVisualMode.TEST_PATTERN:
            base = f"smptehdbars=s={w}x{h}:r={r}"
        elif mode is ErrorVisualMode.STATIC:
            base = (f"color=c={bg}:s={w}x{h}:r={r}[bg];movie={safe_path(image)},"
                    f"scale={w // 2}:{h // 2}:force_original_aspect_ratio=decrease[img];"
                    f"[bg][img]overlay=(W-w)/2:(H-h)/2-{h // 8}:shortest=0:eof_action=repeat")
        else:
            base = f"color=c={bg}:s={w}x{h}:r={r}"
        texts: list[str] = []
        if font and files is not None:  # with no font or text file, picture and clock only (never a crash)
            if mode is ErrorVisualMode.TEST_PATTERN:
                texts = ["drawbox=x=0:y=ih*0.62:w=iw:h=ih*0.26:color=black@0.75:t=fill",
                         drawtext(files["title"], mid, fg, "(w-tw)/2", "h*0.64"),
                         drawtext(files["subtitle"], small, fg, "(w-tw)/2", "h*0.64+" + str(mid + 8)),
                         drawtext(files["ident"], small, fg, "(w-tw)/2", "h*0.84")]
            elif mode is ErrorVisualMode.SLATE:
                texts = ["drawbox=x=0:y=0:w=iw:h=ih*0.16:color=black@0.45:t=fill",
                         drawtext(files["ident"], mid, fg, "w*0.05", "h*0.05"),
                         drawtext(files["title"], big, fg, "(w-tw)/2", "h*0.40"),
                         drawtext(files["subtitle"], mid, fg, "(w-tw)/2", f"h*0.40+{big + 12}"),
                         drawtext(files["info"], small, fg, "(w-tw)/2", "h*0.85")]
            else:  # text and static
                y_title = "h*0.62" if mode is ErrorVisualMode.STATIC else "h*0.36"
                texts = [drawtext(files["title"], big, fg, "(w-tw)/2", y_title),
                         drawtext(files["subtitle"], mid, fg, "(w-tw)/2", f"{y_title}+{big + 12}"),
                         drawtext(files["ident"], small, fg, "(w-tw)/2", "h*0.86"),
                         drawtext(files["info"], small, fg, "(w-tw)/2", f"h*0.86+{small + 8}")]
            if font != find_font():
                texts = [t.replace("drawtext=", f"drawtext=fontfile={safe_path(font)}:", 1) if "fontfile=" not in t
                         else t for t in texts]
        if font:
            texts.append(drawclock(small, fg, "w-tw-20", "20", fmt="localtime"))
        video = ",".join([base] + texts)
        sr = config.sample_rate
        layout = "stereo" if config.audio_channels == 2 else ("mono" if config.audio_channels == 1 else "stereo")
        audio = {
            ErrorAudioMode.SILENT: f"anullsrc=r={sr}:cl={layout}",
            ErrorAudioMode.SINE_WAVE: f"sine=f={config.sine_frequency:g}:sample_rate={sr}",
            ErrorAudioMode.WHITE_NOISE: f"anoisesrc=c=white:r={sr}:a=0.08",
            ErrorAudioMode.BEEP: f"sine=f=1000:sample_rate={sr},volume=volume='if(lt(mod(t,1),0.15),0.6,0)':eval=frame",
        }[config.audio_mode]
        return LavfiSource(video, audio, duration)

    def build_command(self, message: ErrorScreenMessage, config: ErrorScreenConfig, duration: float | None,
                      logo: str | None = None, realtime: bool = False) -> list[str]:
        return lavfi_command(self._ffmpeg(), self.source(message, config, duration, logo), config.profile(),
                             progress=True, realtime=realtime)

    async def generate_error_stream(self, message: ErrorScreenMessage, config: ErrorScreenConfig | None = None,
                                    duration: float = 30, channel_id: int | None = None,
                                    realtime: bool = False) -> AsyncIterator[bytes]:
        """MPEG-TS bytes of the error screen for ``duration`` seconds (the process ends with the iterator)."""
        config = config or ErrorScreenConfig()
        argv = self.build_command(message, config, duration, realtime=realtime)
        pool = self._pool()
        mp = await pool.spawn(argv, channel_id=channel_id, role="error_screen", check_breaker=False,
                              stderr=asyncio.subprocess.DEVNULL)
        try:
            assert mp.proc.stdout is not None
            while True:
                chunk = await mp.proc.stdout.read(1 << 16)
                if not chunk:
                    break
                yield chunk
            rc = await mp.proc.wait()
            if rc != 0:
                raise RuntimeError(f"error screen FFmpeg exited with code {rc}")
        finally:
            await pool.terminate(mp, "error stream closed")

    async def render_preview_async(self, message: ErrorScreenMessage, config: ErrorScreenConfig,
                                   logo: str | None = None, size: tuple[int, int] | None = None) -> PreviewImage:
        """One frame rendered at the config's size (as viewers see it), optionally scaled down to ``size``."""
        cfg = config
        width, height = size or (cfg.width, cfg.height)
        argv = [self._ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                self.source(message, cfg, None, logo).video, "-frames:v", "1",
                "-vf", f"scale={width}:{height}:flags=area", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        mp = await self._pool().spawn(argv, channel_id=None, role="preview", check_breaker=False)
        try:
            out, err = await asyncio.wait_for(mp.proc.communicate(), 30)
        finally:
            await self._pool().terminate(mp, "preview done")
        if mp.returncode != 0 or len(out) < width * height * 3:
            raise RuntimeError(f"preview failed: {err.decode(errors='replace').strip()[-300:]}")
        return PreviewImage(width, height, out[: width * height * 3])

    def render_preview(self, message: ErrorScreenMessage, config: ErrorScreenConfig,
                       logo: str | None = None) -> PreviewImage:
        """One frame as RGB; from async code use ``render_preview_async``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.render_preview_async(message, config, logo))
        raise RuntimeError("render_preview() called inside an event loop; await render_preview_async()")


_generator: ErrorScreenGenerator | None = None


def get_error_screen_generator() -> ErrorScreenGenerator:
    """The process-wide generator (the guide's documented API; the engine wires it at start)."""
    global _generator
    if _generator is None:
        _generator = ErrorScreenGenerator()
    return _generator
