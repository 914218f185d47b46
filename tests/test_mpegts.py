"""The splicer on real FFmpeg output: one timeline, continuous counters, no torn frames."""

import subprocess

import pytest

from exstreamtv.engine.stream.mpegts import CLOCK, TS, ContinuityCounter, scan_timeline
from exstreamtv.engine.stream.splicer import Splicer


@pytest.fixture(scope="module")
def segments(ffmpeg, tmp_path_factory):
    d = tmp_path_factory.mktemp("ts")
    out = []
    for i, (src, seconds) in enumerate((("testsrc2", 3), ("smptebars", 2), ("rgbtestsrc", 2))):
        f = d / f"{i}.ts"
        subprocess.run([ffmpeg.path, "-v", "error", "-y", "-f", "lavfi", "-i", f"{src}=s=160x90:r=15",
                        "-f", "lavfi", "-i", "sine=f=440:sample_rate=48000", "-t", str(seconds),
                        "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-c:a", "aac", "-f", "mpegts", str(f)],
                       check=True, timeout=60)
        out.append(f.read_bytes())
    return out


def splice(parts, feed_size=5000):
    s = Splicer()
    cc = ContinuityCounter()
    out = []
    for data, clean in parts:
        s.begin_segment()
        for i in range(0, len(data), feed_size):
            out += s.feed(data[i:i + feed_size])
        out += s.end_segment(clean)
    for p in out:
        cc.stamp(p.data)  # as the pacer does on release
    return s, out


def test_segments_join_on_one_timeline(segments, ffmpeg, tmp_path):
    s, out = splice([(seg, True) for seg in segments])
    blob = b"".join(p.data for p in out)
    tl = scan_timeline(blob)
    assert tl.cc_errors == 0 and tl.backwards == 0 and tl.sync_errors == 0
    assert tl.max_video_gap < 0.5
    assert tl.video_pts[-1] - tl.video_pts[0] == pytest.approx(7.0, abs=0.6)
    f = tmp_path / "s.ts"
    f.write_bytes(blob)
    dec = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(f), "-f", "null", "-"], capture_output=True, text=True)
    assert dec.returncode == 0 and dec.stderr == ""
    # output times handed to the pacer never go backwards either
    times = [p.time for p in out]
    assert all(b >= a - CLOCK for a, b in zip(times, times[1:]))


def test_crashed_segment_drops_torn_frames(segments, ffmpeg, tmp_path):
    torn = segments[1][: len(segments[1]) // 2 + 77]  # cut mid-packet, mid-frame: a crash
    s, out = splice([(segments[0], True), (torn, False), (segments[2], True)])
    blob = b"".join(p.data for p in out)
    assert len(blob) % TS == 0
    tl = scan_timeline(blob)
    assert tl.cc_errors == 0 and tl.backwards == 0
    f = tmp_path / "t.ts"
    f.write_bytes(blob)
    dec = subprocess.run([ffmpeg.path, "-v", "error", "-i", str(f), "-f", "null", "-"], capture_output=True, text=True)
    assert dec.returncode == 0 and dec.stderr == "", dec.stderr


def test_keyframes_are_flagged_and_header_is_available(segments):
    s, out = splice([(segments[0], True)])
    keys = [p for p in out if p.keyframe]
    assert len(keys) == 3  # -g 15 at 15 fps over 3 s
    assert s.header()[:1] == b"\x47" and len(s.header()) == 2 * TS


def test_timestamps_wrap_at_33_bits(segments):
    s = Splicer(timeline_start=(1 << 33) - 90_000)  # one second before the wrap
    s.begin_segment()
    out = s.feed(segments[0]) + s.end_segment(True)
    blob = b"".join(bytes(p.data) for p in out)
    tl = scan_timeline(blob)
    assert tl.backwards == 0
    assert tl.video_pts[-1] > (1 << 33) / CLOCK  # unwrapped across the wrap


def test_output_items_are_runs_of_one_pes(segments):
    """The splicer hands the pacer one item per PES (its first packet and the continuation run), not
    one per packet; inside a run nothing starts a PES or carries a PCR, and no packet is lost."""
    s, out = splice([(segments[0], True)])
    assert sum(len(p.data) for p in out) == len(segments[0])
    assert len(out) * 4 < len(segments[0]) // TS
    runs = 0
    for p in out:
        d = p.data
        assert len(d) % TS == 0
        assert len({((d[i + 1] & 0x1F) << 8) | d[i + 2] for i in range(0, len(d), TS)}) == 1
        for i in range(TS, len(d), TS):
            runs += 1
            assert not d[i + 1] & 0x40
            assert not (d[i + 3] & 0x20 and d[i + 4] >= 7 and d[i + 5] & 0x10)
    assert runs > 0
