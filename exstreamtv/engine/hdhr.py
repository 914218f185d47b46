"""HDHomeRun tuner emulation data: a stable device id and the documented JSON/XML bodies.

Plex, Jellyfin, Emby and Channels DVR add "an HDHomeRun" by reading ``/discover.json`` and
``/lineup.json``. Some clients check the DeviceID the way libhdhomerun does (the XOR of its
nibbles, every other one mapped through a fixed table, must be 0), so the id we make passes
that check; it is random once and then kept in the data dir, so clients keep the tuner.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
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
