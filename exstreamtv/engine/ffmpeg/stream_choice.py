"""Which audio track and which subtitles a channel airs from a file.

Audio: the channel's preferred languages in order, then the file's default track, then the
first. Subtitles (``off``, ``forced-only``, ``always``): a stream or a sidecar file in a
preferred language (a full track before a forced one with ``always``; only forced ones with
``forced-only``); text subtitles are rendered with libass, bitmap ones (PGS, DVB, DVD)
overlaid: either way burned into the picture, so every client sees them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import SubtitleConfig
from ..onair.media import BITMAP_SUBTITLES, TEXT_SUBTITLES


@dataclass(frozen=True)
class SubtitleChoice:
    kind: str  # "text" (libass) or "bitmap" (overlay)
    index: int | None = None  # among the file's subtitle streams (0:s:N)
    path: str | None = None  # a sidecar file
    language: str = "und"

    def describe(self) -> str:
        where = f"file {self.path}" if self.path else f"stream s:{self.index}"
        return f"{self.kind} subtitles ({self.language}) from {where}"


def choose_audio(streams: tuple, preferred: list[str]) -> int:
    """Index among the file's audio streams (``0:a:N``)."""
    audio = [s for s in streams if s.get("kind") == "audio"]
    for lang in preferred:
        for i, s in enumerate(audio):
            if s.get("language") == lang:
                return i
    for i, s in enumerate(audio):
        if s.get("default"):
            return i
    return 0


def choose_subtitles(streams: tuple, sidecars: tuple, cfg: SubtitleConfig) -> SubtitleChoice | None:
    if cfg.mode == "off":
        return None
    forced_only = cfg.mode == "forced-only"
    subs = [s for s in streams if s.get("kind") == "subtitle"]
    candidates: list[tuple[str, bool, SubtitleChoice]] = []  # (language, forced, choice)
    for i, s in enumerate(subs):
        codec = s.get("codec", "")
        kind = "text" if codec in TEXT_SUBTITLES else "bitmap" if codec in BITMAP_SUBTITLES else None
        if kind is not None:
            candidates.append((s.get("language", "und"), bool(s.get("forced")),
                               SubtitleChoice(kind, index=i, language=s.get("language", "und"))))
    for path, lang, forced in sidecars:
        candidates.append((lang, bool(forced), SubtitleChoice("text", path=path, language=lang)))
    if forced_only:
        candidates = [c for c in candidates if c[1]]
    langs = cfg.languages or sorted({c[0] for c in candidates})
    for lang in langs:
        mine = [c for c in candidates if c[0] == lang]
        if mine:
            mine.sort(key=lambda c: c[1])  # a full track before a forced one
            return mine[0][2]
    return None
