"""Playout benchmark: 7 days of programming for 100 channels over a 20,000-item library.

The library is built in memory (100 shows of 200 episodes, about 22 minutes each, genres,
years, ratings) as a scan would leave it. Every channel has a repeating schedule (a show in
order, a shuffled genre), a weekday evening slot, and filler padding to :30 with pre-roll.
Prints: build time for all channels, airings made, ``at(t)`` cost (the lookup a viewer's
join does), and an extension by one more day.

    .venv/bin/python bench/playout.py [--channels 100] [--days 7] [--items 20000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exstreamtv.engine.config import parse_config  # noqa: E402
from exstreamtv.engine.library.model import Item, Library  # noqa: E402
from exstreamtv.engine.programming.collections import resolve  # noqa: E402
from exstreamtv.engine.programming.playout import Builder, BuildState, Playout  # noqa: E402

GENRES = ["Comedy", "Drama", "Crime", "Documentary", "Animation"]


def library(items: int) -> dict[str, Library]:
    rng = random.Random(1)
    tv = Library("tv", "shows")
    for i in range(items):
        show, ep = divmod(i, 200)
        path = f"/media/tv/Show {show:03d}/Season {ep // 50 + 1:02d}/Show {show:03d} - S{ep // 50 + 1:02d}E{ep % 50 + 1:02d}.mkv"
        tv.items[path] = Item(path, "tv", "episode", 1290 + rng.random() * 120, title=f"Show {show:03d}",
                              show=f"Show {show:03d}", season=ep // 50 + 1, episodes=(ep % 50 + 1,),
                              genres=(GENRES[show % len(GENRES)],), year=1990 + show % 30,
                              rating=5 + (show % 50) / 10)
    films = Library("films", "movies")
    for i in range(300):
        path = f"/media/films/Film {i:03d}.mkv"
        films.items[path] = Item(path, "films", "movie", 5400 + rng.random() * 1800, title=f"Film {i:03d}",
                                 genres=(GENRES[i % len(GENRES)],), year=1970 + i % 50)
    bumpers = Library("bumpers", "other")
    for i in range(40):
        path = f"/media/bumpers/b{i:02d}.mkv"
        bumpers.items[path] = Item(path, "bumpers", "other", 10 + 5 * (i % 12), title=f"Bumper {i}")
    return {"tv": tv, "films": films, "bumpers": bumpers}


def config(channels: int) -> str:
    out = ["libraries:", "  - {name: tv, kind: shows, paths: [/media/tv]}",
           "  - {name: films, kind: movies, paths: [/media/films]}",
           "  - {name: bumpers, kind: other, paths: [/media/bumpers]}", "channels:"]
    for n in range(1, channels + 1):
        out += [f"  - number: {n}", f"    name: Channel {n}", "    schedule:",
                f"      - {{collection: {{show: 'Show {n % 100:03d}'}}, mode: sequential, count: 2}}",
                f"      - {{collection: {{library: tv, genre: {GENRES[n % 5]}}}, mode: shuffle, count: 1}}",
                "    slots:",
                f"      - {{at: '20:00', days: [mon, tue, wed, thu, fri], collection: {{library: films, genre: "
                f"{GENRES[(n + 1) % 5]}}}, mode: shuffle}}",
                "    filler: {collection: {library: bumpers}, pre_roll: {library: bumpers}, pad_to: 30}"]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--items", type=int, default=20000)
    args = ap.parse_args()
    libs = library(args.items)
    import tempfile

    root = Path(tempfile.mkdtemp())
    text = config(args.channels).replace("/media/", str(root) + "/")
    cfg = parse_config(text, "<bench>", env={})
    for lib in libs.values():  # the libraries' paths as configured
        lib.items = {p.replace("/media/", str(root) + "/"): it for p, it in lib.items.items()}
        for p, it in lib.items.items():
            it.path = p
    t0 = time.time()
    start = time.perf_counter()
    playouts = []
    warnings: list[str] = []
    for cc in cfg.channels:
        builder = Builder(cc, lambda spec: resolve(spec, libs), warnings.append)
        p = Playout(builder, BuildState(t0), 86400)
        p.extend(t0 + args.days * 86400)
        playouts.append(p)
    took = time.perf_counter() - start
    airings = sum(len(p.airings) for p in playouts)
    print(f"{args.days:g} days for {args.channels} channels over {args.items} items: built in {took:.2f}s "
          f"({airings} airings, {airings / args.channels:.0f} per channel); {len(warnings)} warning(s)")
    samples = []
    rng = random.Random(2)
    for p in playouts:
        ts = [t0 + rng.random() * args.days * 86400 for _ in range(2000)]
        s = time.perf_counter()
        for t in ts:
            p.at(t)
        samples.append((time.perf_counter() - s) / len(ts))
    print(f"at(t): median {statistics.median(samples) * 1e6:.2f} us, max {max(samples) * 1e6:.2f} us per call "
          f"(over {args.channels} channels x 2000 instants)")
    s = time.perf_counter()
    for p in playouts:
        p.extend(t0 + (args.days + 1) * 86400)
    print(f"one more day for every channel: {time.perf_counter() - s:.2f}s")
    body = sum(len(p.to_json("h")) for p in playouts)
    print(f"stored playouts: {body / 2**20:.1f} MiB of JSON")


if __name__ == "__main__":
    main()
