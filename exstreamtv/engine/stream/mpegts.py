"""MPEG-TS primitives: packet and PES headers, timestamps, continuity counters, analysis.

The splicer (``splicer.py``) builds on these to join FFmpeg outputs into one stream; the
analysis at the end (``scan_timeline``, ``continuity_report``) reads a capture back the way
a player would, for tests, benches and health.
"""

from __future__ import annotations

from dataclasses import dataclass

TS = 188
SYNC = 0x47
PTS_MOD = 1 << 33
HALF = 1 << 32
CLOCK = 90_000
VIDEO_STREAM_TYPES = {0x01, 0x02, 0x1B, 0x24, 0x10}


def read_ts(b: bytes | bytearray, i: int) -> int:
    return (((b[i] >> 1) & 0x07) << 30) | (b[i + 1] << 22) | ((b[i + 2] >> 1) << 15) | (b[i + 3] << 7) | (b[i + 4] >> 1)


def write_ts(b: bytearray, i: int, value: int) -> None:
    value %= PTS_MOD
    prefix = b[i] & 0xF0
    b[i] = prefix | (((value >> 30) & 0x07) << 1) | 1
    b[i + 1] = (value >> 22) & 0xFF
    b[i + 2] = (((value >> 15) & 0x7F) << 1) | 1
    b[i + 3] = (value >> 7) & 0xFF
    b[i + 4] = ((value & 0x7F) << 1) | 1


def read_pcr(b: bytes | bytearray, i: int) -> int:
    return (b[i] << 25) | (b[i + 1] << 17) | (b[i + 2] << 9) | (b[i + 3] << 1) | (b[i + 4] >> 7)


def write_pcr_base(b: bytearray, i: int, value: int) -> None:
    value %= PTS_MOD
    b[i] = (value >> 25) & 0xFF
    b[i + 1] = (value >> 17) & 0xFF
    b[i + 2] = (value >> 9) & 0xFF
    b[i + 3] = (value >> 1) & 0xFF
    b[i + 4] = ((value & 1) << 7) | (b[i + 4] & 0x7F)


@dataclass(slots=True)
class PacketInfo:
    pid: int
    pusi: bool
    has_payload: bool
    payload_start: int  # offset of the payload within the packet
    pcr_at: int  # offset of the PCR, or -1
    rai: bool


def parse_header(p: bytes | bytearray) -> PacketInfo:
    pid = ((p[1] & 0x1F) << 8) | p[2]
    pusi = bool(p[1] & 0x40)
    afc = (p[3] >> 4) & 0x03
    off = 4
    pcr_at = -1
    rai = False
    if afc & 0x02:
        alen = p[4]
        if alen > 0:
            flags = p[5]
            rai = bool(flags & 0x40)
            if flags & 0x10 and alen >= 7:
                pcr_at = 6
        off = 5 + alen
    return PacketInfo(pid, pusi, bool(afc & 0x01) and off < TS, min(off, TS), pcr_at, rai)


def pes_timestamps(p: bytes | bytearray, start: int) -> tuple[int | None, int | None, int, int]:
    """(pts, dts, pts_offset, dts_offset) of a PES header at ``start``; offsets -1 when absent."""
    if start + 14 > TS or p[start] != 0 or p[start + 1] != 0 or p[start + 2] != 1:
        return None, None, -1, -1
    sid = p[start + 3]
    if sid in (0xBC, 0xBE, 0xBF, 0xF0, 0xF1, 0xFF, 0xF2, 0xF8):
        return None, None, -1, -1
    flags = p[start + 7] >> 6
    pts = dts = None
    pts_at = dts_at = -1
    if flags & 0x02:
        pts_at = start + 9
        pts = read_ts(p, pts_at)
        if flags == 0x03 and start + 19 <= TS:
            dts_at = start + 14
            dts = read_ts(p, dts_at)
    return pts, dts, pts_at, dts_at


def parse_pat(p: bytes | bytearray, info: PacketInfo) -> int | None:
    """PID of the first program's PMT."""
    i = info.payload_start
    if info.pusi:
        i += 1 + p[i]
    if i + 8 > TS:
        return None
    section_len = ((p[i + 1] & 0x0F) << 8) | p[i + 2]
    end = min(i + 3 + section_len - 4, TS)
    j = i + 8
    while j + 4 <= end:
        program = (p[j] << 8) | p[j + 1]
        pid = ((p[j + 2] & 0x1F) << 8) | p[j + 3]
        if program != 0:
            return pid
        j += 4
    return None


def parse_pmt(p: bytes | bytearray, info: PacketInfo) -> list[tuple[int, int]]:
    """[(stream_type, pid)] of a PMT that fits in one packet (FFmpeg's always does)."""
    i = info.payload_start
    if info.pusi:
        i += 1 + p[i]
    if i + 12 > TS:
        return []
    section_len = ((p[i + 1] & 0x0F) << 8) | p[i + 2]
    end = min(i + 3 + section_len - 4, TS)
    prog_info_len = ((p[i + 10] & 0x0F) << 8) | p[i + 11]
    j = i + 12 + prog_info_len
    out = []
    while j + 5 <= end:
        stype = p[j]
        pid = ((p[j + 1] & 0x1F) << 8) | p[j + 2]
        es_len = ((p[j + 3] & 0x0F) << 8) | p[j + 4]
        out.append((stype, pid))
        j += 5 + es_len
    return out


@dataclass(slots=True)
class OutPacket:
    data: bytearray  # one TS packet, or a PES's run of continuation packets (one PID, no PCR)
    time: int  # unwrapped 90 kHz output time of the PES this packet belongs to (pacing)
    keyframe: bool  # first packet of a video keyframe
    pid: int = 0
    pes_start: bool = False  # first packet of an elementary-stream PES
    pts: int = -1  # (PES start) output presentation time
    dur: int = 0  # (PES start) how long its frames play, 90 kHz
    frame: int = 0  # (PES start) the length of one of its frames (audio PES may hold several)
    segment: int = 0  # which splicer segment it came from
    clean: bool = True  # cutting the stream just before this packet leaves no picture waiting for cut frames


class ContinuityCounter:
    """Numbers continuity counters on the packets really sent (after any dropping)."""

    def __init__(self) -> None:
        self._cc: dict[int, int] = {}

    def stamp(self, p: bytearray) -> None:
        """Number the packet(s) in ``p``: one, or a run of one PID's packets (the splicer's items)."""
        pid = ((p[1] & 0x1F) << 8) | p[2]
        cc = self._cc.get(pid, -1)
        for i in range(3, len(p), TS):
            if p[i] & 0x10:  # has payload: the counter moves on
                cc = (cc + 1) & 0x0F
            p[i] = (p[i] & 0xF0) | (cc if cc >= 0 else 0)
        if cc >= 0:
            self._cc[pid] = cc

    def stamp_as_last(self, packets: bytes) -> bytes:
        """Copies of PSI packets carrying each PID's latest counter, so a joining viewer's header
        runs straight into the next real packet without a continuity error."""
        out = bytearray(packets)
        for i in range(0, len(out) - TS + 1, TS):
            pid = ((out[i + 1] & 0x1F) << 8) | out[i + 2]
            cc = self._cc.get(pid)
            if cc is not None:
                out[i + 3] = (out[i + 3] & 0xF0) | cc
        return bytes(out)


@dataclass(slots=True)
class StreamEnd:
    """Where a stream's emitted media ends: last decode time, end of presentation, frame length."""

    dts: int
    end: int
    dur: int  # one frame
    video: bool = False


def track_end(ends: dict[int, StreamEnd], pkt: OutPacket, video: bool) -> None:
    """Account the PES that ``pkt`` starts in its stream's end."""
    e = ends.get(pkt.pid)
    pts = pkt.pts if pkt.pts >= 0 else pkt.time
    if e is None:
        ends[pkt.pid] = StreamEnd(pkt.time, pts + pkt.dur, pkt.frame, video)
        return
    if pkt.time > e.dts:
        e.dts = pkt.time
    if pts + pkt.dur > e.end:
        e.end = pts + pkt.dur
    if pkt.frame > 0:
        e.dur = pkt.frame


def pes_packets(pid: int, pts: int, payload: bytes, stream_id: int = 0xC0) -> list[bytearray]:
    """One PES (PTS only) in TS packets, the last padded with adaptation-field stuffing.
    Continuity counters are left 0 for the pacer to number."""
    header = bytes([0, 0, 1, stream_id]) + (len(payload) + 8).to_bytes(2, "big") + bytes([0x80, 0x80, 5])
    ts = bytearray(5)
    ts[0] = 0x20
    write_ts(ts, 0, pts)
    data = header + bytes(ts) + payload
    out = []
    i = 0
    while i < len(data):
        chunk = data[i:i + 184]
        p = bytearray(4)
        p[0] = SYNC
        p[1] = (0x40 if i == 0 else 0) | ((pid >> 8) & 0x1F)
        p[2] = pid & 0xFF
        if len(chunk) < 184:
            stuff = 184 - len(chunk)
            p[3] = 0x30
            af = bytearray([stuff - 1])
            if stuff > 1:
                af.append(0)
                af += b"\xff" * (stuff - 2)
            p += af
        else:
            p[3] = 0x10
        p += chunk
        out.append(p)
        i += 184
    return out


# ---------------------------------------------------------------- analysis (tests, bench, health)

@dataclass
class TimelineReport:
    video_pts: list[float]
    audio_pts: list[float]
    packets: int
    sync_errors: int
    cc_errors: int

    @property
    def max_video_gap(self) -> float:
        v = self.video_pts
        return max((b - a for a, b in zip(v, v[1:])), default=0.0)

    @property
    def backwards(self) -> int:
        v = self.video_pts
        return sum(1 for a, b in zip(v, v[1:]) if b < a)


def scan_timeline(data: bytes) -> TimelineReport:
    """Video/audio PES timestamps (seconds, unwrapped, decode order) and continuity errors of a capture."""
    i = data.find(bytes([SYNC]))
    pmt_pid = None
    video = audio = None
    vts: list[float] = []
    ats: list[float] = []
    cc: dict[int, int] = {}
    refs: dict[int, tuple[int, int]] = {}
    packets = sync_err = cc_err = 0
    while 0 <= i and i + TS <= len(data):
        p = data[i:i + TS]
        if p[0] != SYNC:
            sync_err += 1
            i = data.find(bytes([SYNC]), i + 1)
            continue
        packets += 1
        info = parse_header(p)
        if info.has_payload:
            last = cc.get(info.pid)
            cur = p[3] & 0x0F
            if last is not None and cur != (last + 1) & 0x0F and info.pid != 0x1FFF:
                cc_err += 1
            cc[info.pid] = cur
        if info.pid == 0 and info.has_payload:
            pmt_pid = parse_pat(p, info) or pmt_pid
        elif info.pid == pmt_pid and info.pusi:
            for st, pid in parse_pmt(p, info):
                if st in VIDEO_STREAM_TYPES:
                    video = pid
                else:
                    audio = pid
        elif info.pusi and info.pid in (video, audio):
            pts, dts, _, _ = pes_timestamps(p, info.payload_start)
            ts = dts if dts is not None else pts
            if ts is not None:
                ref = refs.get(info.pid)
                if ref is None:
                    u = ts
                else:
                    d = (ts - ref[0]) % PTS_MOD
                    u = ref[1] + (d - PTS_MOD if d >= HALF else d)
                refs[info.pid] = (ts, u)
                (vts if info.pid == video else ats).append(u / CLOCK)
        i += TS
    return TimelineReport(vts, ats, packets, sync_err, cc_err)
