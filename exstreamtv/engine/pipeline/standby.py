"""A replacement process started in the background: the hot swap's and the recovery's.

Viewers keep watching what is on until the new process has produced its first bytes
(which begin with a keyframe); then it takes over. A standby that fails tells why: the
pipeline failed, the file cannot be played, or the file ends before the planned offset.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..guards.process_pool import ManagedProcess, SpawnRejected
from .segment import SegmentPlan, media_error_in

if TYPE_CHECKING:
    from .channel import Channel


class Standby:
    """A process started in the background that takes over once it has output.

    Used for hot swap (a healthy-but-degraded pipeline, the pool's long-run release) and for
    recovery behind an error screen: the viewers keep watching what is on until the new
    process has produced its first bytes, which begin with a keyframe.
    """

    def __init__(self, channel: Channel, plan: SegmentPlan) -> None:
        self.channel = channel
        self.plan = plan
        self.mp: ManagedProcess | None = None
        self.prefix = bytearray()
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        self.failed: str | None = None
        self.media_error: str | None = None  # the file cannot be played
        self.ended_early = False  # exited cleanly before any output: the file ends before the offset
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"standby-{channel.number}")

    async def _run(self) -> None:
        ch = self.channel
        pool = ch.host.pool
        try:
            try:
                self.mp = await pool.spawn(self.plan.argv, channel_id=ch.number, role=self.plan.kind,
                                           owner_alive=ch.owner_alive)
            except SpawnRejected as exc:
                self.failed = f"spawn rejected: {exc.reason.value}"
                return
            assert self.mp.proc.stdout is not None
            try:
                data = await asyncio.wait_for(self.mp.proc.stdout.read(1 << 16), ch.ffcfg.start_timeout_seconds)
            except asyncio.TimeoutError:
                self.failed = f"no first output within {ch.ffcfg.start_timeout_seconds:g}s"
                return
            if not data:
                rc = await self.mp.proc.wait()
                self.failed = f"ffmpeg exited with code {rc} before any output"
                if rc == 0:
                    self.ended_early = True
                else:
                    err = await self._stderr_tail()
                    self.media_error = media_error_in(err) if self.plan.kind == "program" else None
                return
            self.prefix += data
            self.mp.touch(ch.host.clock.monotonic())
            self.ready.set()
        finally:
            self.done.set()

    async def _stderr_tail(self) -> str:
        assert self.mp is not None and self.mp.proc.stderr is not None
        try:
            data = await asyncio.wait_for(self.mp.proc.stderr.read(), 2.0)
        except (asyncio.TimeoutError, OSError, ValueError):
            return ""
        return data.decode("utf-8", "replace")[-4000:]

    async def discard(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        if self.mp is not None:
            await self.channel.host.pool.terminate(self.mp, "standby discarded")
