"""HLS viewers: sessions made of separate requests.

An HLS client is not one long response but a playlist fetched every few seconds and the
segments it lists. It is admitted like any viewer (same checks, per-channel and per-address
limits, a tuner) on its first request; later requests from the same client (address and
User-Agent on the same channel) are the same session, which ends when it fetches nothing
for ``idle_target_durations`` target durations. A shared cache in front of the server is
one such client, however many viewers it serves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import admission
from ..admission import Admission, AdmissionRefused, Refused
from ..sessions import SessionState, host_of
from .hls import Segment, Segmenter

if TYPE_CHECKING:
    from ..engine import Engine


class HlsUnavailable(Exception):
    """HLS cannot serve this request (off, channel stopped, no segment in time, segment gone)."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail


class HlsViewers:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine
        self._viewers: dict[tuple[int, str, str], Admission] = {}
        self.playlists_served = 0
        self.segments_served = 0
        self.segment_bytes = 0
        self.misses = 0  # segment requests for one no longer (or not yet) held

    @property
    def count(self) -> int:
        return len(self._viewers)

    async def _viewer(self, number: object, client_addr: str, user_agent: str, start: bool = True) -> Admission:
        engine = self.engine
        if not engine.config.hls.enabled:
            raise HlsUnavailable(404, "HLS is off", "set hls.enabled: true")
        channel = admission.check(engine, number)  # raises for an unknown channel
        key = (channel.number, host_of(client_addr), user_agent)
        adm = self._viewers.get(key)
        if adm is not None and adm.session.state is not SessionState.DISCONNECTED and adm.viewer.attached \
                and adm.viewer.broadcaster is channel.broadcaster:
            return adm
        if not start and not channel.running:
            raise HlsUnavailable(404, "Channel not running", "fetch the playlist first")
        if adm is not None:
            adm.close("replaced")
        adm = await admission.admit(engine, channel.number, client_addr, user_agent, kind="hls")
        cfg = engine.config.hls
        target = channel.hls.target_duration if channel.hls is not None else cfg.segment_seconds
        adm.session.fetch_timeout = cfg.idle_target_durations * target
        adm.session.last_fetch = engine.clock.monotonic()
        self._viewers[key] = adm

        def ended(reason: str) -> None:
            if self._viewers.get(key) is adm:
                del self._viewers[key]

        adm.on_end(ended)
        return adm

    def _segmenter(self, adm: Admission) -> Segmenter:
        seg = adm.channel.hls
        if seg is None or seg.closed:
            raise HlsUnavailable(503, "Channel stopped", "request the playlist again")
        return seg

    async def playlist(self, number: object, client_addr: str, user_agent: str) -> tuple[str, int]:
        """The live playlist (waiting for a cold channel's first segment) and its target duration."""
        adm = await self._viewer(number, client_addr, user_agent)
        seg = self._segmenter(adm)
        if not seg.segments:
            ready = await seg.wait_ready(self.engine.config.hls.start_timeout_seconds)
            if not ready:
                raise HlsUnavailable(503, "Channel has no video yet",
                                     f"no segment within {self.engine.config.hls.start_timeout_seconds:g}s")
        text = seg.playlist(lambda n: f"{n}.ts")
        self.playlists_served += 1
        self.engine.sessions.fetched(adm.session, len(text))
        return text, seg.target_duration

    async def segment(self, number: object, seq: int, client_addr: str, user_agent: str) -> Segment:
        adm = await self._viewer(number, client_addr, user_agent, start=False)
        seg = self._segmenter(adm)
        found = seg.get(seq)
        if found is None:
            self.misses += 1
            raise HlsUnavailable(404, "No such segment",
                                 f"segment {seq} is not held (held: {seg.segments[0].seq}-{seg.segments[-1].seq})"
                                 if seg.segments else "no segment yet")
        data = found.data
        self.segments_served += 1
        self.segment_bytes += len(data)
        self.engine.sessions.fetched(adm.session, len(data))
        return found

    def snapshot(self) -> dict:
        return {"viewers": self.count, "playlists_served": self.playlists_served,
                "segments_served": self.segments_served, "segment_bytes": self.segment_bytes,
                "segment_misses": self.misses}


__all__ = ["HlsViewers", "HlsUnavailable", "AdmissionRefused", "Refused"]
