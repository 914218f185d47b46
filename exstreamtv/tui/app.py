"""Placeholder until the console lands: runs headless with a notice."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ..engine.config import Config


def run_console(cfg: Config, data_dir: Path, log_level: str) -> int:
    from ..cli import run_headless, setup_logging

    print("exstreamtv: the console is not built yet; running headless", file=sys.stderr)
    setup_logging(log_level)
    return asyncio.run(run_headless(cfg, data_dir))
