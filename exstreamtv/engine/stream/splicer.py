"""Splicing: many FFmpeg outputs become one continuous MPEG-TS timeline.

Why we splice here instead of a long-lived remux FFmpeg or ``-output_ts_offset``: each
programme, error screen or restarted pipeline is its own FFmpeg process whose output
starts at its own timestamps. The splicer rewrites every segment onto one timeline and
releases a PES only once it is complete, so a process killed mid-frame never sends a torn
frame. Because the engine knows exactly what it sent, any source can take over at any
moment and viewers see one stream.

The rules at every splice (programme change, crash to error screen, return, hot swap):

- **Picture.** The new segment's first frame is presented one frame after the last frame
  presented before it, and decoded after the last one decoded: presentation times rise by
  one frame, decode times only go forward. A video frame is released only once every frame
  presented before it has arrived (``Frontier``), so a cut (a crash, or the pacer dropping
  what is not yet on air) never leaves a frame that waits for pictures that were cut away;
  frames before a segment's first keyframe, or presented before it, are dropped.
- **Sound.** The end of a stream is where its last frames really end: the AAC frames in
  each PES are counted (``aac.count_samples``). Where the old sound ends early (its
  pipeline died), frames of silence fill the hole; where the new sound would overlap the
  old, its leading whole frames are dropped. Either way what remains is under half a frame.
- **Clocks.** PTS/DTS/PCR are unwrapped per segment and written modulo 2^33, so the 26.5 h
  wrap is invisible; PCR never steps back at a splice. ``timeline_start`` places the first
  segment anywhere on the timeline (tests start just before the wrap).
"""

from __future__ import annotations


from . import aac
from .splice_state import Pes, Queued, SegmentState
from .mpegts import (CLOCK, HALF, PTS_MOD, TS, VIDEO_STREAM_TYPES, OutPacket, PacketInfo, StreamEnd, parse_header,
                     parse_pat, parse_pmt, pes_packets, pes_timestamps, read_pcr, track_end, write_pcr_base, write_ts)

MAX_FILL = 10 * CLOCK  # longest hole in the sound filled with silence


class Splicer:
    """Rewrites a sequence of TS segments onto one continuous timeline (see module doc)."""

    MAX_PREBUFFER = 3000  # packets to wait for the first timestamp of every stream

    def __init__(self, timeline_start: int | None = None) -> None:
        self.timeline_start = timeline_start
        self.pmt_pid: int | None = None
        self.es_pids: set[int] = set()
        self.video_pid: int | None = None
        self.pat: bytes | None = None
        self.pmt: bytes | None = None
        self.ends: dict[int, StreamEnd] = {}  # per stream: where what was emitted ends
        self.last_time = 0  # highest output time emitted
        self.last_pcr: int | None = None
        self._adts: dict[int, bytes] = {}  # per audio PID: an ADTS header of its stream
        self._seg = SegmentState()
        self.segments = 0
        self.segment_start: int | None = None
        self.silence_frames = 0  # filled in, over the splicer's life
        self.dropped_audio_frames = 0
        self.dropped_video_frames = 0

    # -- timeline
    def next_start(self) -> int | None:
        """Decode time of the next segment's first frame: one frame after the last one emitted."""
        if not self.ends:
            return None
        v = self.ends.get(self.video_pid) if self.video_pid is not None else None
        if v is not None:
            return v.dts + max(v.dur, 1)
        return max(e.end for e in self.ends.values())

    def begin_segment(self) -> None:
        self._seg = SegmentState()
        self.segments += 1
        self.segment_start = None  # output time where this segment's media begins

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
        open_pes = seg.open_pes
        queue = seg.queue
        while i + TS <= n:
            if (seg.offset is not None and buf[i] == 0x47 and buf[i + 3] & 0x30 == 0x10 and not buf[i + 1] & 0x40
                    and queue):
                # fast path, most packets: a PES continues (payload only, no PCR) right after its last queued part
                pes = open_pes.get(((buf[i + 1] & 0x1F) << 8) | buf[i + 2])
                if pes is not None and queue[-1].pes is pes and not pes.drop and not pes.trim \
                        and pes.pid in self.es_pids:  # (a PMT read in this feed may have changed them)
                    if pes.payload is not None:
                        pes.payload += buf[i + 4:i + TS]
                    queue[-1].data += buf[i:i + TS]
                    seg.cur_time = pes.time
                    i += TS
                    continue
            if buf[i] != 0x47:
                j = buf.find(b"\x47", i + 1)
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
                if ts is not None and pts is not None:
                    seg.first_ts[info.pid] = ts
                    seg.first_pts[info.pid] = pts
            seg.prebuffer.append(p)
            if (self.es_pids and self.es_pids <= seg.first_ts.keys()) or len(seg.prebuffer) >= self.MAX_PREBUFFER:
                self._start(out)
            return
        self._rewrite(p, info)
        self._drain(out)

    def _start(self, out: list[OutPacket]) -> None:
        self._fix_offset(out)
        seg = self._seg
        pending, seg.prebuffer = seg.prebuffer, []
        for q in pending:
            self._rewrite(q, parse_header(q))
        self._drain(out)

    def _fix_offset(self, out: list[OutPacket]) -> None:
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

        def first_pts(pid: int) -> int:
            dts_u = seg.unwrap_ref[pid][1]
            d = (seg.first_pts[pid] - seg.first_ts[pid]) % PTS_MOD
            return dts_u + (d - PTS_MOD if d >= HALF else d)

        vid = self.video_pid if self.video_pid in seg.first_ts else None
        v = self.ends.get(vid) if vid is not None else None
        if not self.ends:
            offset = 0 if self.timeline_start is None else self.timeline_start - first
        elif v is not None and vid is not None:
            # presented one frame after the last picture, decoded after the last decoded one
            offset = max(v.end - first_pts(vid), v.dts + max(v.dur, 1) - seg.unwrap_ref[vid][1])
        else:
            start = self.next_start()
            offset = 0 if start is None else start - first
        seg.offset = offset
        seg.cur_time = first + offset  # PSI packets ahead of the first PES air with it
        self.segment_start = seg.cur_time
        for pid in seg.first_ts:
            prev = self.ends.get(pid)
            if pid == vid or prev is None or prev.video or prev.dur <= 0:
                continue
            self._join_sound(pid, prev, first_pts(pid) + offset, out)

    def _join_sound(self, pid: int, prev: StreamEnd, begin: int, out: list[OutPacket]) -> None:
        """Make the new sound start where the old one ended: fill a hole with frames of silence or
        drop the new sound's leading whole frames, then move it by the remaining part of a frame
        (at most half of one, 10.7 ms at 48 kHz: far below what lip sync notices)."""
        seg = self._seg
        dur = prev.dur
        hole = begin - prev.end
        if hole >= 0:
            header = self._adts.get(pid)
            frame = aac.silent_frame(header) if header else None
            n = (hole + dur // 2) // dur if frame is not None and hole <= MAX_FILL else 0
            t = prev.end
            for _ in range(n):
                assert frame is not None
                for k, data in enumerate(pes_packets(pid, t, frame)):
                    self._emit_packet(OutPacket(data, t, False, pid, k == 0, pts=t, dur=dur, frame=dur,
                                                segment=self.segments, clean=False), out)
                t += dur
            self.silence_frames += n
            seg.audio_shift[pid] = t - begin if abs(t - begin) <= dur // 2 else 0
        else:
            m = (-hole + dur // 2) // dur
            seg.audio_drop[pid] = m
            seg.audio_shift[pid] = prev.end - (begin + m * dur)

    def _rewrite(self, p: bytearray, info: PacketInfo) -> None:
        seg = self._seg
        pid = info.pid
        offset = seg.offset or 0
        if info.pcr_at >= 0:
            raw = read_pcr(p, info.pcr_at)
            if -1 in seg.unwrap_ref:
                u = self._unwrap(-1, raw)
            else:
                seg.unwrap_ref[-1] = (raw, raw)
                u = raw
            write_pcr_base(p, info.pcr_at, u + offset)
        keyframe = False
        first = False
        pes: Pes | None = None
        time = seg.cur_time if seg.cur_time is not None else self.last_time
        if pid in self.es_pids and info.has_payload:
            if info.pusi:
                prev = seg.open_pes.get(pid)
                if prev is not None:
                    self._complete(prev)
                pes = seg.open_pes[pid] = Pes(pid, video=pid == self.video_pid)
                first = True
                pts, dts, pts_at, dts_at = pes_timestamps(p, info.payload_start)
                if pts is not None:
                    shift = 0 if pes.video else seg.audio_shift.get(pid, 0)
                    if dts is not None:
                        udts = self._unwrap(pid, dts)
                        d = (pts - dts) % PTS_MOD
                        upts = udts + (d - PTS_MOD if d >= HALF else d)
                        write_ts(p, dts_at, udts + offset + shift)
                    else:
                        upts = udts = self._unwrap(pid, pts)
                    write_ts(p, pts_at, upts + offset + shift)
                    time = udts + offset + shift
                    pes.pts = upts + offset + shift
                keyframe = pes.video and info.rai
                pes.time = time
                if pes.video:
                    self._admit_video(pes, keyframe)
                elif pes.pts >= 0:
                    start = info.payload_start + 9 + p[info.payload_start + 8]
                    pes.payload = bytearray(p[start:])
                    # overlaps the sound already sent: held, and its leading whole frames cut when complete
                    pes.trim = seg.audio_drop.get(pid, 0) > 0
            else:
                pes = seg.open_pes.get(pid)
                if pes is None:  # continuation of a PES whose start we never saw: drop it
                    return
                time = pes.time
                if pes.payload is not None and not pes.drop:
                    pes.payload += p[info.payload_start:]
            if pes.drop or pes.trim:
                return
        seg.cur_time = time
        seg.queue.append(Queued(p, time, keyframe, pes, first))

    def _admit_video(self, pes: Pes, keyframe: bool) -> None:
        """Frames before the segment's first keyframe, or presented before it, cannot be decoded."""
        seg = self._seg
        if seg.video_floor is None:
            if not keyframe or pes.pts < 0:
                pes.drop = True
                self.dropped_video_frames += 1
                return
            seg.video_floor = pes.pts
        elif pes.pts < seg.video_floor:
            pes.drop = True
            self.dropped_video_frames += 1
            return
        if seg.video_dts is not None and pes.time > seg.video_dts:
            seg.video_dur = pes.time - seg.video_dts
        seg.video_dts = pes.time
        pes.dur = pes.frame = seg.video_dur or self._video_dur()

    def _video_dur(self) -> int:
        v = self.ends.get(self.video_pid) if self.video_pid is not None else None
        return v.dur if v is not None else 0

    def _complete(self, pes: Pes) -> None:
        pes.complete = True
        if pes.video and not pes.drop:  # only whole frames count: a torn one is never sent
            self._seg.arrived.add(pes.pts, pes.dur)
        if pes.payload is not None:
            counted = aac.count_samples(pes.payload)
            if counted is not None:
                samples, rate = counted
                pes.dur = samples * CLOCK // rate
                pes.frame = aac.SAMPLES_PER_FRAME * CLOCK // rate
                self._adts[pes.pid] = bytes(pes.payload[:7])
            if pes.trim:
                self._trim(pes)
            pes.payload = None

    def _trim(self, pes: Pes) -> None:
        """Cut the leading frames of an audio PES that overlap the sound already sent; queue the rest."""
        seg = self._seg
        assert pes.payload is not None
        frames, rate = aac.split_frames(pes.payload)
        drop = seg.audio_drop.get(pes.pid, 0)
        k = min(drop, len(frames)) if frames else 0
        seg.audio_drop[pes.pid] = drop - k if frames else 0
        self.dropped_audio_frames += k
        if not frames or k == len(frames):
            return
        fdur = aac.SAMPLES_PER_FRAME * CLOCK // rate
        pts = pes.pts + k * fdur
        rest = Pes(pes.pid, complete=True, time=pts, pts=pts, dur=(len(frames) - k) * fdur, frame=fdur)
        for j, data in enumerate(pes_packets(pes.pid, pts, b"".join(frames[k:]))):
            seg.queue.append(Queued(data, pts, False, rest, j == 0))

    def _ready(self, item: Queued) -> bool:
        pes = item.pes
        if pes is None:
            return True
        if not pes.complete:
            return False
        if pes.video:
            f = self._seg.arrived.value
            return f is not None and pes.pts <= f
        return True

    def _drain(self, out: list[OutPacket]) -> None:
        q = self._seg.queue
        k = 0
        while k < len(q) and self._ready(q[k]):
            self._emit(q[k], out)
            k += 1
        if k:
            del q[:k]

    def _emit(self, item: Queued, out: list[OutPacket]) -> None:
        pes = item.pes
        seg = self._seg
        if pes is not None and item.first:
            if pes.dur <= 0 and not pes.video:
                prev = self.ends.get(pes.pid)
                pes.dur = pes.frame = prev.dur if prev is not None else 0  # not ADTS: as its last frame
            clean = seg.released.whole
            if pes.video:
                seg.released.add(pes.pts, pes.dur)
            pkt = OutPacket(item.data, item.time, item.keyframe, pes.pid, True, pts=pes.pts, dur=pes.dur,
                            frame=pes.frame, segment=self.segments, clean=clean)
        else:
            data = item.data
            pid = ((data[1] & 0x1F) << 8) | data[2]
            if pes is not None and out and not (data[3] & 0x20 and data[4] >= 7 and data[5] & 0x10):
                last = out[-1]
                if last.pid == pid and last.segment == self.segments and last.time == item.time:
                    # the rest of the PES it continues (no PCR to check): one item, not one per packet
                    last.data += data
                    return
            clean = pes is None and seg.released.whole
            pkt = OutPacket(data, item.time, item.keyframe, pid, False, segment=self.segments, clean=clean)
        self._emit_packet(pkt, out)

    def _emit_packet(self, pkt: OutPacket, out: list[OutPacket]) -> None:
        if pkt.time > self.last_time:
            self.last_time = pkt.time
        p = pkt.data
        if p[3] & 0x20 and p[4] >= 7 and p[5] & 0x10:  # a PCR (at 6): it never steps back at a splice
            pcr = read_pcr(p, 6)
            if self.last_pcr is not None:
                d = (pcr - self.last_pcr) % PTS_MOD
                if d == 0 or d >= HALF:
                    pcr = (self.last_pcr + 1) % PTS_MOD
                    write_pcr_base(p, 6, pcr)
            self.last_pcr = pcr
        if pkt.pid == 0:
            self.pat = bytes(p)
        elif pkt.pid == self.pmt_pid and p[1] & 0x40:
            self.pmt = bytes(p)
        if pkt.pes_start:
            track_end(self.ends, pkt, pkt.pid == self.video_pid)
        out.append(pkt)

    def rebase(self, ends: dict[int, StreamEnd]) -> None:
        """Continue after what was really sent (unsent packets were dropped by the pacer)."""
        if ends:
            self.ends = {pid: StreamEnd(e.dts, e.end, e.dur, e.video) for pid, e in ends.items()}
            self.last_time = max(e.dts for e in ends.values())
            self.last_pcr = None  # the dropped packets' PCR never reached anyone

    def end_segment(self, clean: bool) -> list[OutPacket]:
        """Flush a finished segment. A clean end sends everything; after a crash, torn PES and
        pictures waiting for frames that never came are dropped."""
        seg = self._seg
        out: list[OutPacket] = []
        if seg.offset is None and seg.prebuffer:
            if clean:
                self._start(out)
            else:
                seg.prebuffer = []
        if clean:
            for pes in seg.open_pes.values():
                self._complete(pes)
            # the last frames: nothing can come before them any more
            while seg.arrived.ahead:
                seg.arrived.value = max(seg.arrived.value or 0, seg.arrived.ahead.pop(0))
        video_cut = False  # after a picture that cannot go, no later one may (it may refer to it)
        for item in seg.queue:
            pes = item.pes
            if pes is not None and pes.video and (video_cut or not self._ready(item)):
                video_cut = True
                if item.first:
                    self.dropped_video_frames += 1
                continue
            if self._ready(item):
                self._emit(item, out)
        seg.queue = []
        seg.open_pes = {}
        return out

    def header(self) -> bytes:
        """PAT + PMT for a viewer that joins mid-stream."""
        return (self.pat or b"") + (self.pmt or b"")


__all__ = ["Splicer", "StreamEnd"]
