"""How an FFmpeg is started: in its own session (process group), with PR_SET_PDEATHSIG(SIGKILL)
so it dies with the server even after ``kill -9``; and how the pool tells its own children from
other children of the process."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
from typing import Awaitable, Callable


_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
    except OSError:  # pragma: no cover
        _libc = None
PR_SET_PDEATHSIG = 1


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """Runs in the child between fork and exec: die with the parent, even after kill -9."""

    def setup() -> None:
        if _libc is not None:
            _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


async def default_spawner(argv: list[str], *, stdin: int | None = asyncio.subprocess.DEVNULL,
                          stdout: int | None = asyncio.subprocess.PIPE,
                          stderr: int | None = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, stdin=stdin, stdout=stdout, stderr=stderr,
        start_new_session=True, preexec_fn=_child_setup(os.getpid()), limit=1 << 16,
    )


Spawner = Callable[..., Awaitable[asyncio.subprocess.Process]]


def _own_group(pid: int) -> bool:
    """Our spawner puts every child in a new session (pgid == pid); other children of the
    process (a test's or an embedding app's own FFmpeg) are left alone."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False
