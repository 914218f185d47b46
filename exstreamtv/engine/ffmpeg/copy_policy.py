"""Copy or encode: a programme whose streams already are what the channel sends is remuxed.

The output profile is H.264 (yuv420p) at the channel's size and frame rate with keyframes
at most two keyframe intervals apart (viewers join at a keyframe; HLS cuts at them), and AAC
at the profile's sample rate and channel count. A file that matches is copied (``-c copy``:
a few percent of a core instead of an encode), with its SPS/PPS repeated at every keyframe
so a player meeting new parameter sets at a splice decodes them at once. Anything else is
encoded, and the reason is kept (``encode: 1080p source``) for the API and the console.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..onair.schedule import ScheduleItem
from .command import OutputProfile

COPYABLE_PROFILES = {"constrained baseline", "baseline", "main", "high"}
LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "5.0": 5, "5.1": 6, "5.1(side)": 6, "7.1": 8}


@dataclass(frozen=True)
class Decision:
    copy: bool
    reason: str  # "copy" or "encode: <why>"


def decide(item: ScheduleItem, profile: OutputProfile, audio_index: int = 0, burn_subtitles: bool = False,
           allowed: bool = True) -> Decision:
    def encode(why: str) -> Decision:
        return Decision(False, f"encode: {why}")

    if not allowed:
        return encode("copy is off for this channel")
    if not item.has_video or item.cover:
        return encode("no picture")
    if burn_subtitles:
        return encode("subtitles burned in")
    video = [s for s in item.streams if s.get("kind") == "video"]
    audio = [s for s in item.streams if s.get("kind") == "audio"]
    if not video:
        return encode("streams unknown")
    v = video[0]
    if v.get("codec") != "h264":
        return encode(f"{v.get('codec')} source")
    if (v.get("profile") or "").lower() not in COPYABLE_PROFILES:
        return encode(f"H.264 {v.get('profile') or 'profile unknown'}")
    if v.get("pix_fmt") != "yuv420p":
        return encode(f"{v.get('pix_fmt') or 'unknown pixel format'} source")
    w, h = v.get("width"), v.get("height")
    if (w, h) != (profile.width, profile.height):
        return encode(f"{h}p source" if w and h and w * 9 == h * 16 else f"{w}x{h} source")
    if abs((v.get("fps") or 0) - profile.fps) > 0.01:
        return encode(f"{v.get('fps') or 0:g} fps source")
    gop = item.gop
    if gop is None or gop > 2 * profile.keyframe_interval + 0.01:
        return encode("keyframe spacing unknown" if gop is None else f"keyframes {gop:g}s apart")
    if not item.has_audio or not audio:
        return encode("no sound")
    a = audio[min(audio_index, len(audio) - 1)]
    if a.get("codec") != "aac":
        return encode(f"{a.get('codec')} sound")
    if a.get("sample_rate") != profile.sample_rate:
        return encode(f"{a.get('sample_rate')} Hz sound")
    if LAYOUT_CHANNELS.get(a.get("layout", ""), 0) != profile.audio_channels:
        return encode(f"{a.get('layout')} sound")
    return Decision(True, "copy")
