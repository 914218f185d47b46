"""A stand-in for a channel's FFmpeg: writes a valid MPEG-TS (PAT, PMT, one video and one
AAC stream with real timestamps, keyframes flagged, silent AAC frames) and FFmpeg-style
progress, honouring ``-t`` (a programme's length). Used to test the channel's recovery and
hot swap without FFmpeg: ``python fake_ffmpeg.py <any FFmpeg argv>``.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from exstreamtv.engine.stream import aac  # noqa: E402
from exstreamtv.engine.stream.mpegts import pes_packets, write_ts  # noqa: E402

FPS, GOP, CLOCK = 25, 25, 90_000
START = 126_000  # FFmpeg's muxer starts at 1.4 s
ADTS = aac.silent_frame(bytes([0xFF, 0xF1, 0x4C, 0x80, 0x00, 0xFF, 0xFC]))  # AAC-LC, 48 kHz, stereo


def crc32_mpeg(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def section_packet(pid: int, section: bytes, cc: int) -> bytes:
    body = section + crc32_mpeg(section).to_bytes(4, "big")
    p = bytes([0x47, 0x40 | (pid >> 8), pid & 0xFF, 0x10 | (cc & 0x0F), 0]) + body
    return p + b"\xff" * (188 - len(p))


def pat(cc: int) -> bytes:
    return section_packet(0, bytes([0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00]), cc)


def pmt(cc: int) -> bytes:
    streams = bytes([0x1B, 0xE1, 0x00, 0xF0, 0x00, 0x0F, 0xE1, 0x01, 0xF0, 0x00])
    head = bytes([0x02, 0xB0, 9 + len(streams) + 4, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00])
    return section_packet(0x1000, head + streams, cc)


def packetize(pid: int, pes: bytes, cc: int, flags: int = 0, pcr: int | None = None) -> tuple[list[bytes], int]:
    """TS packets of one PES; the first carries an adaptation field with ``flags`` (and a PCR)."""
    out = []
    i = 0
    while i < len(pes) or not out:
        first = not out
        af = b""
        if first and (flags or pcr is not None):
            af = bytes([flags | (0x10 if pcr is not None else 0)])
            if pcr is not None:
                af += bytes([(pcr >> 25) & 0xFF, (pcr >> 17) & 0xFF, (pcr >> 9) & 0xFF, (pcr >> 1) & 0xFF,
                             ((pcr & 1) << 7) | 0x7E, 0])
        room = 184 - (1 + len(af) if af else 0)
        chunk = pes[i:i + room]
        i += len(chunk)
        stuff = room - len(chunk)
        if af or stuff:
            if not af and stuff == 1:
                field = b"\x00"
            else:
                field = (af or b"\x00") + b"\xff" * (stuff - (0 if af else 2))
                field = bytes([len(field)]) + field
            head = bytes([0x47, (0x40 if first else 0) | (pid >> 8), pid & 0xFF, 0x30 | (cc & 0x0F)])
            out.append(head + field + chunk)
        else:
            out.append(bytes([0x47, (0x40 if first else 0) | (pid >> 8), pid & 0xFF, 0x10 | (cc & 0x0F)]) + chunk)
        cc += 1
    return out, cc


def video_packets(pts: int, key: bool, cc: int) -> tuple[list[bytes], int]:
    """One video frame (PTS only: no B-frames); a keyframe's first packet has RAI and a PCR."""
    payload = bytes([0, 0, 0, 1, 0x65 if key else 0x41]) + b"\x11" * 900
    header = bytes([0, 0, 1, 0xE0, 0, 0, 0x80, 0x80, 5])
    ts = bytearray(5)
    ts[0] = 0x20
    write_ts(ts, 0, pts)
    return packetize(0x100, header + bytes(ts) + payload, cc, 0x40 if key else 0, pts - 63_000 if key else None)


def main(argv: list[str]) -> int:
    duration = float(argv[argv.index("-t") + 1]) if "-t" in argv else None
    out = sys.stdout.buffer
    cc = {0: 0, 0x1000: 0, 0x100: 0, 0x101: 0}
    frame = CLOCK // FPS
    afr = 1024 * CLOCK // 48_000
    n_video = 0
    a_t = START - afr  # priming, like FFmpeg's AAC encoder
    started = time.monotonic()
    last_progress = 0.0
    while duration is None or n_video < round(duration * FPS):
        pts = START + n_video * frame
        chunk = []
        if n_video % 10 == 0:
            chunk += [pat(cc[0]), pmt(cc[0x1000])]
            cc[0] += 1
            cc[0x1000] += 1
        packets, cc[0x100] = video_packets(pts, n_video % GOP == 0, cc[0x100])
        chunk += packets
        while a_t < pts + frame:
            for p in pes_packets(0x101, a_t, ADTS):
                p[3] = (p[3] & 0xF0) | (cc[0x101] & 0x0F)
                cc[0x101] += 1
                chunk.append(bytes(p))
            a_t += afr
        try:
            out.write(b"".join(chunk))
            out.flush()
        except BrokenPipeError:
            return 0
        n_video += 1
        now = time.monotonic()
        if now - last_progress >= 0.5:
            last_progress = now
            media = n_video / FPS
            speed = media / max(1e-3, now - started)
            sys.stderr.write(f"frame={n_video}\nfps={FPS}.00\nbitrate= 500.0kbits/s\nout_time_us={int(media * 1e6)}\n"
                             f"dup_frames=0\ndrop_frames=0\nspeed={speed:.2f}x\nprogress=continue\n")
            sys.stderr.flush()
        time.sleep(0.5 / FPS)  # about 2x real time, like a light encode
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
