"""What IPTV clients are shown: the HDHomeRun identity and tuners, channel logos (the configured
file, or one made once from the channel's number and name) and the XMLTV guide.

``IptvFeeds`` is the part of ``Engine`` these come from (a mixin, as ``ChannelLineups`` is).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

from .admission import TUNER_KINDS
from .ffmpeg.command import drawtext
from .hdhr import load_device_id
from .onair.schedule import Schedule
from .pipeline.channel import Channel


class IptvFeeds:
    """HDHomeRun identity and tuners, logos and guide of the engine (a mixin of ``Engine``)."""

    @property
    def hdhr_device_id(self) -> str:
        if self._device_id is None:
            stored = self.store.meta("hdhr_device_id") if self.store is not None else None
            self._device_id = stored or load_device_id(self.data_dir)
            if self.store is not None and not stored:
                self.store.set_meta("hdhr_device_id", self._device_id)
        return self._device_id

    def hdhr_channels_in_use(self) -> set[int]:
        return {s.channel_id for s in self.sessions.sessions(include_disconnected=False) if s.kind in TUNER_KINDS}

    def tuners(self) -> list[dict[str, Any] | None]:
        """What each emulated tuner carries (None: free): the channels HDHomeRun and HLS viewers use."""
        live = [s for s in self.sessions.sessions(include_disconnected=False) if s.kind in TUNER_KINDS]
        now = self.clock.monotonic()
        out: list[dict[str, Any] | None] = []
        for number in sorted({s.channel_id for s in live})[:self.config.hdhr.tuner_count]:
            mine = [s for s in live if s.channel_id == number]
            ch = self.channels.get(number)
            out.append({"channel": number, "name": ch.name if ch else str(number),
                        "clients": sorted({s.client_addr.rsplit(":", 1)[0] for s in mine}),
                        "bps": round(sum(s.current_rate_bps(now) for s in mine))})
        return out + [None] * (self.config.hdhr.tuner_count - len(out))

    async def logo(self, channel_id: int) -> tuple[bytes, str]:
        """The channel's logo: the configured file, else a PNG made once from its number and name."""
        ch = self.channel(channel_id)
        if ch.cfg.logo:
            path = Path(ch.cfg.logo)
            kind = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml",
                    ".gif": "image/gif", ".webp": "image/webp"}.get(path.suffix.lower(), "application/octet-stream")
            return await asyncio.to_thread(path.read_bytes), kind
        digest = hashlib.sha1(f"{ch.number}|{ch.name}".encode()).hexdigest()
        out = self.data_dir / "logos" / f"{ch.number}-{digest[:10]}.png"
        if not out.exists():
            # single flight: parallel requests for an uncached logo wait for one render
            pending = self._logo_renders.get(out)
            if pending is None:
                pending = asyncio.ensure_future(self._render_logo(ch, digest, out))
                self._logo_renders[out] = pending
                pending.add_done_callback(lambda _f, key=out: self._logo_renders.pop(key, None))
            await asyncio.shield(pending)
        return await asyncio.to_thread(out.read_bytes), "image/png"

    async def _render_logo(self, ch: Channel, digest: str, out: Path) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        text = out.with_suffix(".txt")
        tmp = out.with_suffix(".tmp.png")
        text.write_text(f"{ch.number}\n{ch.name[:24]}", encoding="utf-8")
        hue = int(digest[:2], 16) / 255
        r, g, b = (int(40 + 120 * abs(((hue * 6 + k) % 6) - 3) / 3) for k in (0, 4, 2))
        vf = drawtext(text, 34, "white", "(w-tw)/2", "(h-th)/2")
        argv = [self.ffmpeg_path, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                f"color=c=0x{r:02x}{g:02x}{b:02x}:s=256x256,{vf}", "-frames:v", "1", "-f", "image2", str(tmp)]
        try:
            rc, err = await self._run_tool("logo")(argv)
            if rc != 0 or not tmp.exists():
                raise RuntimeError(f"could not make a logo for channel {ch.number}: {err.strip()[-200:]}")
            os.replace(tmp, out)  # whole or not at all
        finally:
            text.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)

    async def guide_xml(self, base: str) -> bytes:
        """The XMLTV document for clients that reach us at ``base`` (cached per minute, built off the loop)."""
        def artwork_url(path: str) -> str | None:
            key = self.artwork.key_of(path)
            return f"{base}/artwork/{key}.jpg" if key else None

        return await self.guide.get(base, self.clock.time(), self.config.guide.hours, self.guide_channels(base),
                                    artwork_url)

    def guide_channels(self, base: str) -> list[tuple[int, str, str, Schedule | None]]:
        return [(ch.number, ch.name, f"{base}/iptv/logos/{ch.number}.png", ch.schedule,
                 ch.cfg.filler is not None and ch.cfg.filler.guide == "merged")
                for ch in sorted(self.channels.values(), key=lambda c: c.number)]
