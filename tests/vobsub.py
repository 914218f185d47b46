"""A real DVD subtitle track (VobSub: ``.idx`` + ``.sub``) written byte by byte, as DVD rips
carry them: FFmpeg cannot encode bitmap subtitles from text, so tests make their own.

Each subtitle is one SPU (sub-picture unit: a run-length-coded 2-bit picture and its control
sequences: colours, contrast, display area, start and stop) in an MPEG-PS pack of 2048 bytes
(private stream 1, substream 0x20); the ``.idx`` names the palette, frame size and each
subtitle's time and file position, which is what FFmpeg's vobsub demuxer reads."""

from __future__ import annotations

from pathlib import Path

SECTOR = 2048
PACK_HEADER = bytes.fromhex("000001BA4400040004010189C3F8")  # MPEG-2 pack header, SCR 0


def _pts(value: int) -> bytes:
    return bytes([0x21 | ((value >> 29) & 0x0E), (value >> 22) & 0xFF, 0x01 | ((value >> 14) & 0xFE),
                  (value >> 7) & 0xFF, 0x01 | ((value << 1) & 0xFE)])


def spu(width: int, height: int, x: int, y: int, seconds: float) -> bytes:
    """One sub-picture: a ``width`` x ``height`` block of colour 1 (opaque) at (x, y), shown for ``seconds``."""
    line = b"\x00\x01"  # run code with count 0: colour 1 to the end of the line
    top = line * ((height + 1) // 2)  # even lines
    bottom = line * (height // 2)  # odd lines
    top_at, bottom_at = 4, 4 + len(top)
    ctrl_at = bottom_at + len(bottom)
    x2, y2 = x + width - 1, y + height - 1
    first = bytes([0x03, 0x32, 0x10,  # colours: pixel 1 -> palette 1 (white), 0 -> palette 0
                   0x04, 0xFF, 0xF0,  # contrast: pixel 1 opaque, background transparent
                   0x05, x >> 4, ((x & 0xF) << 4) | (x2 >> 8), x2 & 0xFF, y >> 4, ((y & 0xF) << 4) | (y2 >> 8),
                   y2 & 0xFF,
                   0x06, top_at >> 8, top_at & 0xFF, bottom_at >> 8, bottom_at & 0xFF,
                   0x01, 0xFF])  # start display
    second_at = ctrl_at + 4 + len(first)
    delay = round(seconds * 90000 / 1024)
    seq1 = b"\x00\x00" + second_at.to_bytes(2, "big") + first
    seq2 = delay.to_bytes(2, "big") + second_at.to_bytes(2, "big") + bytes([0x02, 0xFF])  # stop display
    body = top + bottom + seq1 + seq2
    size = 4 + len(body)
    return size.to_bytes(2, "big") + ctrl_at.to_bytes(2, "big") + body


def pack(pts_seconds: float, payload: bytes) -> bytes:
    """One 2048-byte PS pack: private stream 1 PES (PTS, substream 0x20), padded."""
    header = b"\x81\x80\x05" + _pts(round(pts_seconds * 90000)) + b"\x20"
    pes = b"\x00\x00\x01\xBD" + len(header + payload).to_bytes(2, "big") + header + payload
    out = PACK_HEADER + pes
    pad = SECTOR - len(out)
    assert pad >= 6, "one subtitle per pack"
    return out + b"\x00\x00\x01\xBE" + (pad - 6).to_bytes(2, "big") + b"\xFF" * (pad - 6)


def write_vobsub(base: Path, times: list[tuple[float, float]], frame: tuple[int, int] = (720, 480),
                 lang: str = "en") -> Path:
    """``base``.idx and ``base``.sub with a wide white bar in the lower part of the frame for each
    (start, seconds); returns the ``.idx`` (FFmpeg opens that and finds the ``.sub`` beside it)."""
    w, h = frame
    bar_w, bar_h = w * 2 // 3, h // 10
    sub = bytearray()
    index = []
    for start, seconds in times:
        ms = round(start * 1000)
        stamp = f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}:{ms % 1000:03d}"
        index.append(f"timestamp: {stamp}, filepos: {len(sub):09x}")
        sub += pack(start, spu(bar_w, bar_h, (w - bar_w) // 2, h - 2 * bar_h, seconds))
    base.with_suffix(".sub").write_bytes(bytes(sub))
    palette = ", ".join(["000000", "ffffff", "808080", "404040"] + ["000000"] * 12)
    idx = base.with_suffix(".idx")
    idx.write_text("# VobSub index file, v7 (do not modify this line!)\n"
                   f"size: {w}x{h}\norg: 0, 0\nscale: 100%, 100%\nalpha: 100%\nsmooth: OFF\nfadein/out: 0, 0\n"
                   "align: OFF at LEFT TOP\ntime offset: 0\nforced subs: OFF\n"
                   f"palette: {palette}\ncustom colors: OFF, tridx: 0000, colors: 000000, 000000, 000000, 000000\n"
                   f"langidx: 0\nid: {lang}, index: 0\n" + "\n".join(index) + "\n")
    return idx
