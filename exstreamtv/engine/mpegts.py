"""MPEG-TS splicing: many FFmpeg outputs become one continuous transport stream.

Why we splice here instead of a long-lived remux FFmpeg or ``-output_ts_offset``: each
program, error screen or restarted pipeline is its own FFmpeg process whose output
starts at its own timestamps. The splicer rewrites every segment onto one timeline
(PTS/DTS/PCR shifted so the new segment starts right after the last frame sent),
renumbers continuity counters per PID, and releases a PES only once it is complete, so a
process killed mid-frame never sends a torn frame. Because the engine knows exactly
what it sent, any source can take over at any moment (a crash, an error screen, a hot
swap at a keyframe) and viewers see one stream whose timestamps only go forward. The
cost is a few microseconds of Python per 188-byte packet, per channel, not per viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TS = 188
SYNC = 0x47
PTS_MOD = 1 << 33
HALF = 1 << 32
CLOCK = 90_000
VIDEO_STREAM_TYPES = {0x01, 0x02, 0x1B, 0x24, 0x10}


def _read_ts(b: bytes | bytearray, i: int) -> int:
    return (((b[i] >> 1) & 0x07) << 30) | (b[i + 1] << 22) | ((b[i + 2] >> 1) << 15) | (b[i + 3] << 7) | (b[i + 4] >> 1)


def _write_ts(b: bytearray, i: int, value: int) -> None:
    value %= PTS_MOD
    prefix = b[i] & 0xF0
    b[i] = prefix | (((value >> 30) & 0x07) << 1) | 1
    b[i + 1] = (value >> 22) & 0xFF
    b[i + 2] = (((value >> 15) & 0x7F) << 1) | 1
    b[i + 3] = (value >> 7) & 0xFF
    b[i + 4] = ((value & 0x7F) << 1) | 1


def _read_pcr(b: bytes | bytearray, i: int) -> int:
    return (b[i] << 25) | (b[i + 1] << 17) | (b[i + 2] << 9) | (b[i + 3] << 1) | (b[i + 4] >> 7)


def _write_pcr_base(b: bytearray, i: int, value: int) -> None:
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
        pts = _read_ts(p, pts_at)
        if flags == 0x03 and start + 19 <= TS:
            dts_at = start + 14
            dts = _read_ts(p, dts_at)
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
    data: bytearray
    time: int  # unwrapped 90 kHz output time of the PES this packet belongs to (pacing)
    keyframe: bool  # first packet of a video keyframe
    pid: int = 0
    pes_start: bool = False  # first packet of an elementary-stream PES


class ContinuityCounter:
    """Numbers continuity counters on the packets really sent (after any dropping)."""

    def __init__(self) -> None:
        self._cc: dict[int, int] = {}

    def stamp(self, p: bytearray) -> None:
        pid = ((p[1] & 0x1F) << 8) | p[2]
        if p[3] & 0x10:  # has payload
            cc = (self._cc.get(pid, -1) + 1) & 0x0F
            self._cc[pid] = cc
        else:
            cc = self._cc.get(pid, 0)
        p[3] = (p[3] & 0xF0) | cc

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


def track_pes(last: dict[int, tuple[int, int]], pid: int, time: int) -> None:
    """Remember a stream's latest PES time and the interval between its PES (its frame length)."""
    prev = last.get(pid)
    interval = prev[1] if prev else 0
    if prev and time > prev[0]:
        interval = time - prev[0]
    last[pid] = (max(time, prev[0]) if prev else time, interval)


@dataclass(slots=True)
class _Pes:
    complete: bool = False
    time: int = 0


@dataclass(slots=True)
class _Queued:
    data: bytearray
    time: int
    keyframe: bool
    pes: _Pes | None


@dataclass
class _Segment:
    rest: bytes = b""
    offset: int | None = None
    prebuffer: list[bytearray] = field(default_factory=list)
    first_ts: dict[int, int] = field(default_factory=dict)  # raw first DTS per PID
    unwrap_ref: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid -> (raw, unwrapped)
    open_pes: dict[int, _Pes] = field(default_factory=dict)
    queue: list[_Queued] = field(default_factory=list)
    cur_time: int | None = None  # output time of the latest packet (PSI packets inherit it)
    bytes_in: int = 0
    sync_losses: int = 0


class Splicer:
    """Rewrites a sequence of TS segments onto one continuous timeline (see module doc)."""

    MAX_PREBUFFER = 3000  # packets to wait for the first timestamp of every stream

    def __init__(self) -> None:
        self.pmt_pid: int | None = None
        self.es_pids: set[int] = set()
        self.video_pid: int | None = None
        self.pat: bytes | None = None
        self.pmt: bytes | None = None
        self._last: dict[int, tuple[int, int]] = {}  # pid -> (last emitted unwrapped ts, interval)
        self.last_time = 0  # highest output time emitted
        self._seg = _Segment()
        self.segments = 0
        self.segment_start: int | None = None

    # -- timeline
    def next_start(self) -> int | None:
        """Where the next segment's first frame goes: right after the latest emitted frame."""
        if not self._last:
            return None
        return max(t + max(iv, 1) for t, iv in self._last.values())

    def begin_segment(self) -> None:
        self._seg = _Segment()
        self.segments += 1
        self.segment_start: int | None = None  # output time where this segment's media begins

    def _unwrap(self, pid: int, raw: int) -> int:
        ref = self._seg.unwrap_ref.get(pid)
        if ref is None:
            u = raw
        else:
            d = (raw - ref[0]) % PTS_MOD
            if d >= HALF:
                d -= PTS_MOD
            u = ref[1] + d
        self._seg.unwrap_ref[pid] = (raw, u)
        return u

    # -- input
    def feed(self, data: bytes) -> list[OutPacket]:
        seg = self._seg
        seg.bytes_in += len(data)
        buf = seg.rest + data if seg.rest else data
        n = len(buf)
        i = 0
        out: list[OutPacket] = []
        while i + TS <= n:
            if buf[i] != SYNC:
                j = buf.find(bytes([SYNC]), i + 1)
                seg.sync_losses += 1
                if j < 0:
                    i = n
                    break
                i = j
                continue
            self._packet(bytearray(buf[i:i + TS]), out)
            i += TS
        seg.rest = bytes(buf[i:]) if i < n else b""
        return out

    def _packet(self, p: bytearray, out: list[OutPacket]) -> None:
        seg = self._seg
        info = parse_header(p)
        if info.pid == 0 and info.has_payload:
            pmt = parse_pat(p, info)
            if pmt is not None:
                self.pmt_pid = pmt
        elif info.pid == self.pmt_pid and info.has_payload and info.pusi:
            streams = parse_pmt(p, info)
            if streams:
                self.es_pids = {pid for _, pid in streams}
                vids = [pid for st, pid in streams if st in VIDEO_STREAM_TYPES]
                self.video_pid = vids[0] if vids else None
        if seg.offset is None:
            if info.pusi and info.pid in self.es_pids and info.pid not in seg.first_ts:
                pts, dts, _, _ = pes_timestamps(p, info.payload_start)
                ts = dts if dts is not None else pts
                if ts is not None:
                    seg.first_ts[info.pid] = ts
            seg.prebuffer.append(p)
            if (self.es_pids and self.es_pids <= seg.first_ts.keys()) or len(seg.prebuffer) >= self.MAX_PREBUFFER:
                self._fix_offset()
                pending, seg.prebuffer = seg.prebuffer, []
                for q in pending:
                    self._rewrite(q)
                self._drain(out)
            return
        self._rewrite(p)
        self._drain(out)

    def _fix_offset(self) -> None:
        seg = self._seg
        if not seg.first_ts:
            seg.offset = 0
            return
        first = min(seg.first_ts.values())
        # seed unwrapping with the raw first values so later timestamps unwrap near them
        for pid, ts in seg.first_ts.items():
            d = (ts - first) % PTS_MOD
            if d >= HALF:
                d -= PTS_MOD
            seg.unwrap_ref[pid] = (ts, first + d)
        start = self.next_start()
        seg.offset = 0 if start is None else start - first
        seg.cur_time = first + seg.offset  # PSI packets ahead of the first PES air with it
        self.segment_start = seg.cur_time

    def _rewrite(self, p: bytearray) -> None:
        seg = self._seg
        info = parse_header(p)
        pid = info.pid
        offset = seg.offset or 0
        if info.pcr_at >= 0:
            raw = _read_pcr(p, info.pcr_at)
            ref = seg.unwrap_ref.get(-1)
            u = self._unwrap(-1, raw) if ref is not None else raw
            if ref is None:
                seg.unwrap_ref[-1] = (raw, raw)
            _write_pcr_base(p, info.pcr_at, u + offset)
        keyframe = False
        pes: _Pes | None = None
        time = seg.cur_time if seg.cur_time is not None else self.last_time
        if pid in self.es_pids and info.has_payload:
            if info.pusi:
                prev = seg.open_pes.get(pid)
                if prev is not None:
                    prev.complete = True
                pes = seg.open_pes[pid] = _Pes()
                pts, dts, pts_at, dts_at = pes_timestamps(p, info.payload_start)
                if pts is not None:
                    upts = self._unwrap(pid, pts) if dts is None else None
                    if dts is not None:
                        udts = self._unwrap(pid, dts)
                        d = (pts - dts) % PTS_MOD
                        upts = udts + (d - PTS_MOD if d >= HALF else d)
                        _write_ts(p, dts_at, udts + offset)
                        time = udts + offset
                    else:
                        time = upts + offset  # type: ignore[operator]
                    _write_ts(p, pts_at, upts + offset)  # type: ignore[operator]
                keyframe = pid == self.video_pid and info.rai
            else:
                pes = seg.open_pes.get(pid)
                if pes is None:  # continuation of a PES whose start we never saw: drop it
                    return
                time = pes.time
            if info.pusi:
                pes.time = time
        seg.cur_time = time
        seg.queue.append(_Queued(p, time, keyframe, pes))

    def _drain(self, out: list[OutPacket]) -> None:
        q = self._seg.queue
        k = 0
        while k < len(q) and (q[k].pes is None or q[k].pes.complete):
            self._emit(q[k], out)
            k += 1
        if k:
            del q[:k]

    def _emit(self, item: _Queued, out: list[OutPacket]) -> None:
        if item.time > self.last_time:
            self.last_time = item.time
        p = item.data
        info = parse_header(p)
        pid = info.pid
        if pid == 0:
            self.pat = bytes(p)
        elif pid == self.pmt_pid and info.pusi:
            self.pmt = bytes(p)
        pes_start = info.pusi and pid in self.es_pids
        if pes_start:
            track_pes(self._last, pid, item.time)
        out.append(OutPacket(p, item.time, item.keyframe, pid, pes_start))

    def rebase(self, last: dict[int, tuple[int, int]]) -> None:
        """Continue after what was really sent (unsent packets were dropped by the pacer)."""
        if last:
            self._last = dict(last)
            self.last_time = max(t for t, _ in last.values())

    def end_segment(self, clean: bool) -> list[OutPacket]:
        """Flush a finished segment. A clean end sends everything; after a crash, torn PES are dropped."""
        seg = self._seg
        out: list[OutPacket] = []
        if seg.offset is None and seg.prebuffer:
            if clean:
                self._fix_offset()
                pending, seg.prebuffer = seg.prebuffer, []
                for q in pending:
                    self._rewrite(q)
            else:
                seg.prebuffer = []
        if clean:
            for pes in seg.open_pes.values():
                pes.complete = True
        for item in seg.queue:
            if item.pes is None or item.pes.complete:
                self._emit(item, out)
        seg.queue = []
        seg.open_pes = {}
        return out

    def header(self) -> bytes:
        """PAT + PMT for a viewer that joins mid-stream."""
        return (self.pat or b"") + (self.pmt or b"")


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
