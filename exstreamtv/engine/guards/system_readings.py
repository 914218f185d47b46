"""What the process pool reads from the system (memory, file descriptors, per-process CPU): a
protocol the tests can fill with their own figures, and the real readings through psutil."""

from __future__ import annotations

import os
import resource
from typing import Any, Protocol


class SystemReadings(Protocol):
    def memory_percent(self) -> float: ...

    def memory_available_bytes(self) -> int: ...

    def fd_limit(self) -> int: ...

    def fd_used(self) -> int: ...

    def process_stats(self, pid: int) -> tuple[int, float] | None: ...


class PsutilReadings:
    """Real readings through psutil (per-process CPU needs a cached Process object)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._procs: dict[int, Any] = {}
        self._self = psutil.Process()

    def memory_percent(self) -> float:
        return float(self._psutil.virtual_memory().percent)

    def memory_available_bytes(self) -> int:
        return int(self._psutil.virtual_memory().available)

    def fd_limit(self) -> int:
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    def fd_used(self) -> int:
        try:
            return self._self.num_fds()
        except Exception:
            return len(os.listdir("/proc/self/fd"))

    def cpu_percent(self) -> float:
        """The machine's CPU use since the last call, percent of all cores."""
        return float(self._psutil.cpu_percent(None))

    def process_stats(self, pid: int) -> tuple[int, float] | None:
        psutil = self._psutil
        try:
            p = self._procs.get(pid)
            if p is None:
                p = self._procs[pid] = psutil.Process(pid)
                p.cpu_percent(None)
            return int(p.memory_info().rss), float(p.cpu_percent(None))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            self._procs.pop(pid, None)
            return None

    def forget(self, pid: int) -> None:
        self._procs.pop(pid, None)
