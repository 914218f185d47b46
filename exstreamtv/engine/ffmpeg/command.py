"""FFmpeg command lines assembled from typed options (no string soup).

Every process that feeds a channel (program, error screen, slate) encodes to the same
``OutputProfile``: resolution, frame rate, H.264 with fixed keyframe spacing and closed
GOPs, AAC at one sample rate and layout, MPEG-TS on stdout, progress on stderr. That
sameness is what lets the splicer join their outputs into one stream.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stream_choice import SubtitleChoice
from functools import lru_cache
from pathlib import Path

from ..config import FFmpegConfig

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}


@dataclass(frozen=True)
class OutputProfile:
    width: int = 1280
    height: int = 720
    fps: int = 30
    preset: str = "veryfast"
    video_bitrate_kbps: int = 3000
    audio_bitrate_kbps: int = 128
    sample_rate: int = 48000
    audio_channels: int = 2
    keyframe_interval: float = 2.0
    threads: int = 0

    @classmethod
    def from_config(cls, c: FFmpegConfig) -> "OutputProfile":
        return cls(c.width - c.width % 2, c.height - c.height % 2, c.fps, c.preset, c.video_bitrate_kbps,
                   c.audio_bitrate_kbps, c.sample_rate, c.audio_channels, c.keyframe_interval_seconds, c.threads)

    @property
    def gop(self) -> int:
        return max(1, round(self.fps * self.keyframe_interval))

    @property
    def layout(self) -> str:
        return LAYOUTS.get(self.audio_channels, "stereo")

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


# Containers without a seek index: an input seek lands anywhere (often mid-GOP), so the
# picture would only start at the next keyframe (up to 10 s later with x264's defaults).
INEXACT_SEEK = {".ts", ".m2ts", ".mts", ".m2t", ".tp", ".trp", ".mpg", ".mpeg", ".vob", ".mod", ".tod", ".avi",
                ".flv", ".wtv", ".dvr-ms"}
SEEK_PREROLL = 12.0  # seconds decoded before the offset in such containers: covers a GOP of up to 12 s


@dataclass(frozen=True)
class FileSource:
    path: str
    offset: float = 0.0
    duration: float | None = None
    has_video: bool = True
    has_audio: bool = True
    cover: bool = False  # the only picture is an attached cover image (music): shown as a still
    audio_index: int = 0  # which audio stream (0 = the first)
    subtitle: "SubtitleChoice | None" = None  # burned into the picture

    @property
    def preroll(self) -> float:
        """Seconds to decode before the offset (then dropped) so picture and sound start together."""
        if self.offset <= 0.05 or not self.has_video or Path(self.path).suffix.lower() not in INEXACT_SEEK:
            return 0.0
        return min(self.offset, SEEK_PREROLL)


@dataclass(frozen=True)
class LavfiSource:
    """Generated picture and sound (filtergraph descriptions), e.g. for error screens and demo clips."""

    video: str
    audio: str
    duration: float | None = None


def _fmt(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") or "0"


def _head(ffmpeg: str, progress: bool) -> list[str]:
    args = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "warning", "-nostats"]
    if progress:
        args += ["-progress", "pipe:2", "-stats_period", "0.5"]
    return args


def _encode(profile: OutputProfile, duration: float | None, skip: float = 0.0) -> list[str]:
    kbps = profile.video_bitrate_kbps
    args = [
        "-c:v", "libx264", "-preset", profile.preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
        "-b:v", f"{kbps}k", "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 2}k",
        "-g", str(profile.gop), "-keyint_min", str(profile.gop), "-sc_threshold", "0", "-flags", "+cgop",
        "-force_key_frames", f"expr:gte(t,n_forced*{_fmt(profile.keyframe_interval)})",
    ]
    if profile.threads:
        args += ["-threads", str(profile.threads)]
    args += ["-c:a", "aac", "-b:a", f"{profile.audio_bitrate_kbps}k", "-ar", str(profile.sample_rate),
             "-ac", str(profile.audio_channels)]
    if skip > 0:
        args += ["-ss", _fmt(skip)]  # output seek: decoded, then dropped (exact, for both streams)
    if duration is not None:
        args += ["-t", _fmt(duration)]
    # one AAC frame per PES: a crash loses at most the frame being written, and the splicer can
    # join sound at any frame (FFmpeg packs ~8 frames, 0.17 s, into a PES by default)
    args += ["-pes_payload_size", "0", "-f", "mpegts", "pipe:1"]
    return args


def video_normalize(profile: OutputProfile, source: bool = False) -> str:
    """Scale into the profile's frame keeping the *display* aspect ratio, then pad, fix fps.

    For a file (``source``): interlaced frames are deinterlaced (``bwdif`` only touches frames
    flagged interlaced), and anamorphic pixels (SAR != 1, e.g. a DVD's 720x480 at 8:9 or 32:27)
    are first made square, so 4:3 airs 4:3 and 16:9 fills the frame. Display rotation is
    applied by FFmpeg's autorotation before the graph."""
    w, h = profile.width, profile.height
    pre = "bwdif=mode=send_frame:deint=interlaced,scale='trunc(iw*sar/2)*2':ih,setsar=1," if source else ""
    return (f"{pre}scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:black,"
            f"setsar=1,fps={profile.fps},format=yuv420p")


def audio_normalize(profile: OutputProfile) -> str:
    return (f"aresample={profile.sample_rate}:async=1:first_pts=0,"
            f"aformat=sample_fmts=fltp:sample_rates={profile.sample_rate}:channel_layouts={profile.layout}")


def program_command(ffmpeg: str, src: FileSource, profile: OutputProfile, progress: bool = True) -> list[str]:
    """One program (or the rest of it from ``offset``) normalised to the channel profile."""
    args = _head(ffmpeg, progress)
    args += ["-fflags", "+genpts+discardcorrupt"]
    preroll = src.preroll
    if src.offset - preroll > 0.05:
        args += ["-ss", _fmt(src.offset - preroll)]
    args += ["-i", src.path]
    graph = []
    n = 1
    if src.has_video:
        graph.append(f"{_subtitled(src)}{video_normalize(profile, source=True)}[v]")
    else:
        # no picture: black, or the cover art (an attached picture: one frame) held as a still
        args += ["-f", "lavfi", "-i", f"color=c=black:s={profile.size}:r={profile.fps}"]
        if src.cover:
            # the picture is one frame at the file's start: read it from a second, unseeked input
            w, h = profile.width, profile.height
            args += ["-i", src.path]
            graph.append(f"[{n + 1}:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease,setsar=1,"
                         f"format=yuv420p[cov];"
                         f"[{n}:v][cov]overlay=(W-w)/2:(H-h)/2:eof_action=repeat,{video_normalize(profile)}[v]")
            n += 1
        else:
            graph.append(f"[{n}:v]{video_normalize(profile)}[v]")
        n += 1
    if src.has_audio:
        graph.append(f"[0:a:{src.audio_index}]{audio_normalize(profile)}[a]")
    else:
        args += ["-f", "lavfi", "-i", f"anullsrc=r={profile.sample_rate}:cl={profile.layout}"]
        graph.append(f"[{n}:a]{audio_normalize(profile)}[a]")
    args += ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]"]
    return args + _encode(profile, src.duration, preroll)


def copy_command(ffmpeg: str, src: FileSource, progress: bool = True) -> list[str]:
    """A programme that already fits the profile, remuxed: no decode, no encode. SPS/PPS go in
    band at every keyframe, so a splice to new parameter sets is decodable at once."""
    args = _head(ffmpeg, progress) + ["-fflags", "+genpts+discardcorrupt"]
    if src.offset > 0.05:
        args += ["-ss", _fmt(src.offset)]  # lands on the keyframe before: the picture starts there
    args += ["-i", src.path, "-map", "0:v:0", "-map", f"0:a:{src.audio_index}", "-c:v", "copy",
             "-bsf:v", "h264_mp4toannexb,dump_extra=freq=keyframe", "-c:a", "copy"]
    if src.duration is not None:
        args += ["-t", _fmt(src.duration)]
    return args + ["-pes_payload_size", "0", "-f", "mpegts", "pipe:1"]


def _subtitled(src: FileSource) -> str:
    """The picture input, with the chosen subtitles burned in (at the source's own size)."""
    sub = src.subtitle
    if sub is None:
        return "[0:v:0]"
    if sub.kind == "bitmap":
        return f"[0:v:0][0:s:{sub.index}]overlay=eof_action=pass:repeatlast=0,"
    # libass reads the subtitles itself, on the file's own clock: shift the picture to it and back
    shift = _fmt(max(0.0, src.offset - src.preroll))
    where = f"filename={filter_value(sub.path)}" if sub.path else f"filename={filter_value(src.path)}:si={sub.index}"
    return f"[0:v:0]setpts=PTS+{shift}/TB,subtitles={where},setpts=PTS-{shift}/TB,"


def lavfi_command(ffmpeg: str, src: LavfiSource, profile: OutputProfile, progress: bool = True,
                  realtime: bool = False) -> list[str]:
    """Generated video + audio (error screens, slates, demo material)."""
    args = _head(ffmpeg, progress)
    if realtime:
        args += ["-re"]
    args += ["-f", "lavfi", "-i", src.video, "-f", "lavfi", "-i", src.audio,
             "-filter_complex", f"[0:v]{video_normalize(profile)}[v];[1:a]{audio_normalize(profile)}[a]",
             "-map", "[v]", "-map", "[a]"]
    return args + _encode(profile, src.duration)


# ---------------------------------------------------------------- drawtext

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./\-]+$")


def filter_value(value: str) -> str:
    """Escape a value for a filter option inside a filtergraph (both escaping levels).

    Level 1 (option parser): backslash-escape ``\\ ' :``. Level 2 (graph parser):
    backslash-escape ``\\ ' , ; [ ]``. A value escaped this way cannot end the option or
    the filter, so it cannot inject options.
    """
    lvl1 = re.sub(r"([\\':])", r"\\\1", value)
    return re.sub(r"([\\',;\[\]])", r"\\\1", lvl1)


def safe_path(path: str | Path) -> str:
    p = str(path)
    return p if _SAFE_PATH.match(p) else filter_value(p)


def color_value(color: str) -> str:
    """``#rrggbb`` -> ``0xrrggbb`` (FFmpeg's colour syntax); anything else is refused."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", color or ""):
        raise ValueError(f"colour must be #rrggbb, got {color!r}")
    return "0x" + color[1:].lower()


@lru_cache(maxsize=1)
def find_font() -> str | None:
    """A TrueType font for drawtext: fontconfig's match for Sans, else common locations, else None."""
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans:style=Bold"], capture_output=True,
                                 text=True, timeout=5)
            if out.returncode == 0 and out.stdout and Path(out.stdout).is_file():
                return out.stdout
        except (OSError, subprocess.SubprocessError):
            pass
    for cand in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                 "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                 "/usr/share/fonts/TTF/DejaVuSans.ttf", "/Library/Fonts/Arial.ttf",
                 "/System/Library/Fonts/Supplemental/Arial.ttf"):
        if Path(cand).is_file():
            return cand
    bundled = Path(__file__).resolve().parent.parent / "assets" / "font.ttf"
    return str(bundled) if bundled.is_file() else None


def drawtext(textfile: str | Path, size: int, color: str, x: str, y: str, box: bool = False) -> str:
    """A drawtext filter that reads its text from a file with expansion off (no escaping pitfalls)."""
    parts = [f"textfile={safe_path(textfile)}", "expansion=none", f"fontsize={size}", f"fontcolor={color}",
             f"x={x}", f"y={y}"]
    font = find_font()
    if font:
        parts.insert(0, f"fontfile={safe_path(font)}")
    if box:
        parts += ["box=1", "boxcolor=black@0.5", "boxborderw=6"]
    return "drawtext=" + ":".join(parts)


def drawclock(size: int, color: str, x: str, y: str, fmt: str = "pts") -> str:
    """Running time code (``pts``) or wall clock (``localtime``), text fixed by us."""
    font = find_font()
    text = r"%{pts\:hms}" if fmt == "pts" else r"%{localtime\:%H\\\:%M\\\:%S}"
    parts = ([f"fontfile={safe_path(font)}"] if font else []) + [
        f"text='{text}'", f"fontsize={size}", f"fontcolor={color}", f"x={x}", f"y={y}",
        "box=1", "boxcolor=black@0.5", "boxborderw=6"]
    return "drawtext=" + ":".join(parts)
