"""Make the README's console screenshots from a real running engine.

    python -m exstreamtv.tui.screenshots [--out screenshots] [--data-dir DIR]

Starts the engine on the embedded demo channels (port chosen by the OS), connects two
viewers, and saves SVG (and PNG when cairosvg is installed) of the main screen, the
error-screen preview and the help screen.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx

from ..engine.config import load_config
from .app import ConsoleApp


async def viewer(base: str, n: int, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        async with c.stream("GET", f"/stream/channels/{n}.ts") as r:
            async for _ in r.aiter_raw():
                if stop.is_set():
                    return


def save(app: ConsoleApp, out: Path, name: str) -> None:
    svg = app.export_screenshot(title="EXStreamTV")
    (out / f"{name}.svg").write_text(svg)
    try:
        import cairosvg

        cairosvg.svg2png(bytestring=svg.encode(), write_to=str(out / f"{name}.png"))
    except Exception:  # PNG is optional (cairosvg is not a dependency)
        pass


async def main(out: Path, data_dir: Path, size: tuple[int, int]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, env={})
    from ..cli import EmbeddedBackend

    app = ConsoleApp(EmbeddedBackend(cfg, data_dir, "127.0.0.1", 0), refresh_seconds=0.5, config=cfg)
    async with app.run_test(size=size) as pilot:
        while app.control is None:
            await pilot.pause(0.2)
        base = app.control.urls[0]
        stop = asyncio.Event()
        tasks = [asyncio.ensure_future(viewer(base, n, stop)) for n in (1, 1, 2)]
        await pilot.pause(8)
        save(app, out, "main")
        await pilot.press("e")
        await pilot.pause(3)
        save(app, out, "error_screen_preview")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause(0.5)
        save(app, out, "help")
        await pilot.press("escape")
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await pilot.press("q")
        while app.is_running:
            await pilot.pause(0.2)
    print(f"saved screenshots in {out}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("screenshots"))
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--size", default="120x36")
    a = p.parse_args()
    w, h = (int(x) for x in a.size.split("x"))
    asyncio.run(main(a.out, a.data_dir or Path(tempfile.mkdtemp(prefix="exstv-shots-")), (w, h)))
