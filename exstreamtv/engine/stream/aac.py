"""AAC in ADTS (how MPEG-TS carries AAC): frame counting and silent frames for splices.

The splicer needs two things from the audio it passes through: how long a PES really
plays (FFmpeg's muxer may pack several AAC frames into one PES, so the time of the *next*
PES says nothing about where the last one ends) and, where a pipeline died before its
sound reached the end of its picture, frames of silence to fill the hole. A silent frame
is built from the stream's own ADTS header (profile, rate, channels): one
``raw_data_block`` whose channel elements carry no spectral bands, which every AAC
decoder renders as 1024 samples of silence.
"""

from __future__ import annotations

SAMPLES_PER_FRAME = 1024
RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)

# syntactic elements per channel configuration (ISO 14496-3, table 1.19)
SCE, CPE, LFE, END = 0, 1, 3, 7
ELEMENTS = {1: (SCE,), 2: (CPE,), 3: (SCE, CPE), 4: (SCE, CPE, SCE), 5: (SCE, CPE, CPE),
            6: (SCE, CPE, CPE, LFE), 7: (SCE, CPE, CPE, CPE, LFE)}


def parse_header(b: bytes | bytearray, i: int = 0) -> tuple[int, int, int] | None:
    """(frame length in bytes, sample rate, raw data blocks) of an ADTS header at ``i``."""
    if i + 7 > len(b) or b[i] != 0xFF or (b[i + 1] & 0xF6) != 0xF0:
        return None
    rate_index = (b[i + 2] >> 2) & 0x0F
    if rate_index >= len(RATES):
        return None
    length = ((b[i + 3] & 0x03) << 11) | (b[i + 4] << 3) | (b[i + 5] >> 5)
    if length < 7:
        return None
    return length, RATES[rate_index], (b[i + 6] & 0x03) + 1


def split_frames(payload: bytes | bytearray) -> tuple[list[bytes], int]:
    """The whole ADTS frames at the start of a PES payload, and their sample rate."""
    frames: list[bytes] = []
    i = 0
    rate = 0
    n = len(payload)
    while i + 7 <= n:
        h = parse_header(payload, i)
        if h is None or h[2] != 1 or i + h[0] > n:
            break
        frames.append(bytes(payload[i:i + h[0]]))
        rate = h[1]
        i += h[0]
    return frames, rate


def count_samples(payload: bytes | bytearray) -> tuple[int, int] | None:
    """(samples, sample rate) of the whole ADTS frames in a PES payload; None if it is not ADTS."""
    i = 0
    samples = 0
    rate = 0
    n = len(payload)
    while i + 7 <= n:
        h = parse_header(payload, i)
        if h is None:
            break
        length, rate, blocks = h
        if i + length > n:
            break
        samples += blocks * SAMPLES_PER_FRAME
        i += length
    return (samples, rate) if samples else None


class _Bits:
    def __init__(self) -> None:
        self.value = 0
        self.n = 0

    def put(self, v: int, bits: int) -> None:
        self.value = (self.value << bits) | (v & ((1 << bits) - 1))
        self.n += bits

    def bytes(self) -> bytes:
        pad = -self.n % 8
        return (self.value << pad).to_bytes((self.n + pad) // 8, "big")


def _silent_ics(bits: _Bits) -> None:
    """individual_channel_stream: a long window with no scale factor bands (nothing to play)."""
    bits.put(100, 8)  # global_gain (irrelevant: there are no spectral values)
    bits.put(0, 1)  # ics_reserved_bit
    bits.put(0, 2)  # window_sequence: ONLY_LONG_SEQUENCE
    bits.put(0, 1)  # window_shape
    bits.put(0, 6)  # max_sfb = 0: no section, scale factor or spectral data follow
    bits.put(0, 1)  # predictor_data_present
    bits.put(0, 3)  # pulse, tns and gain control data absent


def silent_raw_block(channel_config: int) -> bytes:
    bits = _Bits()
    for element in ELEMENTS.get(channel_config, (CPE,)):
        bits.put(element, 3)
        bits.put(0, 4)  # element_instance_tag
        if element == CPE:
            bits.put(0, 1)  # common_window
            _silent_ics(bits)
            _silent_ics(bits)
        else:
            _silent_ics(bits)
    bits.put(END, 3)
    return bits.bytes()


def silent_frame(header: bytes | bytearray) -> bytes | None:
    """One ADTS frame of silence in the format of the ADTS ``header`` (from the stream itself)."""
    if parse_header(header) is None:
        return None
    config = ((header[2] & 0x01) << 2) | (header[3] >> 6)
    raw = silent_raw_block(config or 2)
    length = 7 + len(raw)
    h = bytearray(header[:7])
    h[1] |= 0x01  # protection_absent: no CRC follows
    h[3] = (h[3] & 0xFC) | ((length >> 11) & 0x03)
    h[4] = (length >> 3) & 0xFF
    h[5] = ((length & 0x07) << 5) | 0x1F  # buffer fullness 0x7FF (variable rate)
    h[6] = 0xFC  # fullness low bits, one raw data block
    return bytes(h) + raw
