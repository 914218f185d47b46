"""HDHomeRun tuner emulation data: a stable device id and the documented JSON/XML bodies.

Plex, Jellyfin, Emby and Channels DVR add "an HDHomeRun" by reading ``/discover.json`` and
``/lineup.json``. Some clients check the DeviceID the way libhdhomerun does (the XOR of its
nibbles, every other one mapped through a fixed table, must be 0), so the id we make passes
that check; it is random once and then kept in the data dir, so clients keep the tuner.
"""

from __future__ import annotations

import secrets
import zlib
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape

_LUT = (0xA, 0x5, 0xF, 0x6, 0x7, 0xC, 0x1, 0xB, 0x9, 0x2, 0x8, 0xD, 0x4, 0x3, 0xE, 0x0)


def _checksum(device_id: int) -> int:
    c = 0
    for i, shift in enumerate(range(28, -4, -4)):
        nibble = (device_id >> shift) & 0xF
        c ^= _LUT[nibble] if i % 2 == 0 else nibble
    return c


def device_id_is_valid(device_id: int) -> bool:
    return _checksum(device_id) == 0


def make_device_id(seed: int) -> int:
    """A valid id from 28 random bits: the last nibble (taken as is) makes the XOR zero."""
    base = (seed & 0x0FFFFFFF) << 4
    return base | _checksum(base)


def load_device_id(data_dir: Path) -> str:
    """The persisted device id (made once)."""
    path = data_dir / "hdhr-device-id"
    try:
        text = path.read_text().strip()
        if len(text) == 8 and device_id_is_valid(int(text, 16)):
            return text.upper()
    except (OSError, ValueError):
        pass
    value = f"{make_device_id(secrets.randbits(28)):08X}"
    path.write_text(value + "\n")
    return value


def discover(device_id: str, base: str, name: str, tuners: int) -> dict[str, Any]:
    return {
        "FriendlyName": name,
        "Manufacturer": "Silicondust",
        "ModelNumber": "HDTC-2US",
        "FirmwareName": "hdhomeruntc_atsc",
        "FirmwareVersion": "20200101",
        "DeviceID": device_id,
        "DeviceAuth": f"exstreamtv{device_id.lower()}",
        "BaseURL": base,
        "LineupURL": f"{base}/lineup.json",
        "TunerCount": tuners,
    }


def lineup_status() -> dict[str, Any]:
    return {"ScanInProgress": 0, "ScanPossible": 1, "Source": "Cable", "SourceList": ["Cable"]}


def device_xml(device_id: str, base: str, name: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
  <specVersion><major>1</major><minor>0</minor></specVersion>
  <URLBase>{escape(base)}</URLBase>
  <device>
    <deviceType>urn:schemas-upnp-org:device:MediaServer:1</deviceType>
    <friendlyName>{escape(name)}</friendlyName>
    <manufacturer>Silicondust</manufacturer>
    <modelName>HDTC-2US</modelName>
    <modelNumber>HDTC-2US</modelNumber>
    <serialNumber>{escape(device_id)}</serialNumber>
    <UDN>uuid:{escape(device_id.lower())}-exstreamtv</UDN>
  </device>
</root>
"""


def ssdp_response(device_id: str, base: str) -> bytes:
    """Answer to an SSDP M-SEARCH for a media server (what Plex sends to find tuners)."""
    return ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nEXT:\r\n"
            f"LOCATION: {base}/device.xml\r\nSERVER: EXStreamTV UPnP/1.0\r\n"
            "ST: urn:schemas-upnp-org:device:MediaServer:1\r\n"
            f"USN: uuid:{device_id.lower()}-exstreamtv::urn:schemas-upnp-org:device:MediaServer:1\r\n\r\n").encode()


def is_msearch_for_us(data: bytes) -> bool:
    text = data.decode("latin-1", "replace").upper()
    return text.startswith("M-SEARCH") and ("MEDIASERVER" in text or "SSDP:ALL" in text)


# ---------------------------------------------------------------- UDP discovery (libhdhomerun's protocol)
# A packet: type (u16 BE), payload length (u16 BE), TLVs, CRC-32 of all that (little-endian).
# A TLV: tag (1 byte), length (1 byte below 128, else 2: low 7 bits | 0x80, then the rest), value.
DISCOVER_PORT = 65001
TYPE_DISCOVER_REQ, TYPE_DISCOVER_RPY = 0x0002, 0x0003
TAG_DEVICE_TYPE, TAG_DEVICE_ID, TAG_TUNER_COUNT = 0x01, 0x02, 0x10
TAG_LINEUP_URL, TAG_BASE_URL, TAG_DEVICE_AUTH, TAG_MULTI_TYPE = 0x27, 0x2A, 0x2B, 0x2D
DEVICE_TYPE_TUNER, WILDCARD = 0x00000001, 0xFFFFFFFF


class DiscoveryPacketError(ValueError):
    """A discovery packet that is not one (the reason names what is wrong)."""


def _tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    size = bytes([n]) if n < 128 else bytes([(n & 0x7F) | 0x80, n >> 7])
    return bytes([tag]) + size + value


def _packet(kind: int, payload: bytes) -> bytes:
    head = kind.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
    return head + (zlib.crc32(head) & 0xFFFFFFFF).to_bytes(4, "little")


def parse_packet(data: bytes) -> tuple[int, dict[int, list[bytes]]]:
    """(type, {tag: [values]}) of a discovery packet, or ``DiscoveryPacketError``."""
    if len(data) < 8:
        raise DiscoveryPacketError(f"{len(data)} bytes: shorter than a header and a CRC")
    kind = int.from_bytes(data[0:2], "big")
    length = int.from_bytes(data[2:4], "big")
    if 4 + length + 4 != len(data):
        raise DiscoveryPacketError(f"length field {length} does not match the {len(data)} bytes received")
    if zlib.crc32(data[:4 + length]) & 0xFFFFFFFF != int.from_bytes(data[4 + length:], "little"):
        raise DiscoveryPacketError("CRC mismatch")
    tags: dict[int, list[bytes]] = {}
    i, end = 4, 4 + length
    while i < end:
        if i + 2 > end:
            raise DiscoveryPacketError(f"TLV at byte {i} is cut off")
        tag, n = data[i], data[i + 1]
        i += 2
        if n & 0x80:
            if i >= end:
                raise DiscoveryPacketError(f"TLV length at byte {i} is cut off")
            n = (n & 0x7F) | (data[i] << 7)
            i += 1
        if i + n > end:
            raise DiscoveryPacketError(f"TLV tag 0x{tag:02X} claims {n} bytes past the end")
        tags.setdefault(tag, []).append(bytes(data[i:i + n]))
        i += n
    return kind, tags


def discover_reply(request: bytes, device_id: str, base: str, tuners: int) -> bytes | None:
    """The reply to a discovery request that asks for a tuner (or anything) with our id (or any);
    None when the request is not for us. Raises ``DiscoveryPacketError`` on a malformed packet."""
    kind, tags = parse_packet(request)
    if kind != TYPE_DISCOVER_REQ:
        return None
    ours = int(device_id, 16)
    wanted_types = {int.from_bytes(v[k:k + 4], "big") for v in tags.get(TAG_MULTI_TYPE, [])
                    for k in range(0, len(v) - 3, 4)}
    wanted_types |= {int.from_bytes(v, "big") for v in tags.get(TAG_DEVICE_TYPE, []) if len(v) == 4}
    if wanted_types and not wanted_types & {DEVICE_TYPE_TUNER, WILDCARD}:
        return None
    ids = {int.from_bytes(v, "big") for v in tags.get(TAG_DEVICE_ID, []) if len(v) == 4}
    if ids and not ids & {ours, WILDCARD}:
        return None
    payload = (_tlv(TAG_DEVICE_TYPE, DEVICE_TYPE_TUNER.to_bytes(4, "big")) + _tlv(TAG_DEVICE_ID, ours.to_bytes(4, "big"))
               + _tlv(TAG_TUNER_COUNT, bytes([max(1, min(tuners, 255))]))
               + _tlv(TAG_BASE_URL, base.encode()) + _tlv(TAG_LINEUP_URL, f"{base}/lineup.json".encode())
               + _tlv(TAG_DEVICE_AUTH, f"exstreamtv{device_id.lower()}".encode()))
    return _packet(TYPE_DISCOVER_RPY, payload)


def discover_request(device_type: int = WILDCARD, device_id: int = WILDCARD) -> bytes:
    """A discovery request as libhdhomerun sends it (tests)."""
    return _packet(TYPE_DISCOVER_REQ, _tlv(TAG_DEVICE_TYPE, device_type.to_bytes(4, "big"))
                   + _tlv(TAG_DEVICE_ID, device_id.to_bytes(4, "big")))


# ---------------------------------------------------------------- TCP control (hdhomerun_config <id> get /sys/model)
# The same packet framing over TCP port 65001: GETSET requests name a variable (NUL-terminated),
# the reply repeats the name with its value or an error message.
TYPE_GETSET_REQ, TYPE_GETSET_RPY = 0x0004, 0x0005
TAG_GETSET_NAME, TAG_GETSET_VALUE, TAG_ERROR_MESSAGE, TAG_GETSET_LOCKKEY = 0x03, 0x04, 0x05, 0x15
MAX_CONTROL_PAYLOAD = 3074  # libhdhomerun's largest packet payload


def _cstr(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def control_reply(request: bytes, lookup: Callable[[str], str | None]) -> bytes:
    """The reply to one GETSET request; ``lookup(name)`` gives a variable's value (None: unknown).
    Every variable is read-only here: a set is answered with an error, as a locked tuner does."""
    kind, tags = parse_packet(request)
    if kind != TYPE_GETSET_REQ:
        raise DiscoveryPacketError(f"packet type 0x{kind:04X} is not a get/set request")
    names = tags.get(TAG_GETSET_NAME)
    if not names:
        raise DiscoveryPacketError("get/set request without a variable name")
    name = _cstr(names[0])
    payload = _tlv(TAG_GETSET_NAME, name.encode() + b"\0")
    if TAG_GETSET_VALUE in tags:
        payload += _tlv(TAG_ERROR_MESSAGE, b"ERROR: read-only (EXStreamTV is configured, not tuned)\0")
    else:
        value = lookup(name)
        if value is None:
            payload += _tlv(TAG_ERROR_MESSAGE, f"ERROR: unknown getset variable '{name[:100]}'".encode() + b"\0")
        else:
            payload += _tlv(TAG_GETSET_VALUE, value.encode() + b"\0")
    return _packet(TYPE_GETSET_RPY, payload)


def control_values(device_id: str, tuners: int, tuner_status: Callable[[int], str]) -> Callable[[str], str | None]:
    """The variables a client reads from a tuner like this one."""
    fixed = {"/sys/model": "hdhomeruntc_atsc", "/sys/hwmodel": "HDTC-2US", "/sys/version": "20200101",
             "/sys/features": "channelmap: us-bcast us-cable\nmodulation: 8vsb qam256 qam64\n",
             "/sys/copyright": "EXStreamTV (emulating an HDHomeRun tuner)", "/sys/debug": "",
             "/sys/id": device_id, "/lineup/scan": "state=complete progress=100% found=0"}

    def lookup(name: str) -> str | None:
        if name in fixed:
            return fixed[name]
        parts = name.split("/")
        if len(parts) == 3 and parts[1].startswith("tuner") and parts[1][5:].isdigit():
            i = int(parts[1][5:])
            if i < tuners and parts[2] == "status":
                return tuner_status(i)
            if i < tuners and parts[2] in ("channel", "channelmap", "filter", "program", "target", "lockkey"):
                return {"channel": "none", "channelmap": "us-cable", "filter": "0x0000-0x1FFF",
                        "program": "0", "target": "none", "lockkey": "none"}[parts[2]]
        return None

    return lookup


def control_request(name: str, value: str | None = None) -> bytes:
    """A get (or set) request as libhdhomerun sends it (tests)."""
    payload = _tlv(TAG_GETSET_NAME, name.encode() + b"\0")
    if value is not None:
        payload += _tlv(TAG_GETSET_VALUE, value.encode() + b"\0")
    return _packet(TYPE_GETSET_REQ, payload)


def tuner_status(tuners: list[dict[str, Any] | None], i: int) -> str:
    """``/tunerN/status`` as a tuner prints it."""
    t = tuners[i] if i < len(tuners) else None
    if t is None:
        return "ch=none lock=none ss=0 snq=0 seq=0 bps=0 pps=0"
    return f"ch=auto:{t['channel']} lock=8vsb ss=100 snq=100 seq=100 bps={t['bps']} pps={t['bps'] // 1504}"


def status_json(tuners: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """``/status.json``: one entry per tuner, the busy ones with what they carry."""
    out: list[dict[str, Any]] = []
    for i, t in enumerate(tuners):
        if t is None:
            out.append({"Resource": f"tuner{i}"})
        else:
            out.append({"Resource": f"tuner{i}", "VctNumber": str(t["channel"]), "VctName": t["name"],
                        "Frequency": 0, "SignalStrengthPercent": 100, "SignalQualityPercent": 100,
                        "SymbolQualityPercent": 100, "TargetIP": ",".join(t["clients"]),
                        "NetworkRate": t["bps"]})
    return out
