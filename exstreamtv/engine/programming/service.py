"""Scheduled channels in the engine: their playouts built, stored, extended and rebuilt.

At start a channel's stored playout is used as it is when its programming did not change
(the guide's promises hold across restarts and rescans); when it changed, what is on air
now finishes and the new programming starts after it, with the collections' cursors
carried over (a sequential show goes on where it was). Extensions are stored as they are
built; a library rescan makes new items available to the next extension.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from ..onair.lineup import library_items
from ..onair.schedule import ScheduleItem
from .collections import resolve
from .playout import Builder, BuildState, Playout, config_hash, stored_airings

if TYPE_CHECKING:
    from ..engine import Engine
    from ..pipeline.channel import Channel


class Programming:
    def __init__(self, engine: "Engine") -> None:
        self.engine = engine

    @property
    def ahead(self) -> float:
        cfg = self.engine.config
        return max(cfg.programming.build_days * 86400, cfg.guide.hours * 3600 + 3600)

    def _by_path(self) -> dict[str, ScheduleItem]:
        out: dict[str, ScheduleItem] = {}
        for lib in self.engine.libraries.libraries.values():
            for it in library_items(lib):
                out[it.path] = it
        return out

    def build(self, ch: "Channel", previous: dict | None = None) -> Playout | None:
        """The channel's playout (stored, or built now); None while its libraries were never scanned."""
        e = self.engine
        cfg = ch.cfg
        libs = e.libraries.libraries
        waiting = [n for n in self.libraries_of(cfg) if n in libs and libs[n].last_scan is None]
        if waiting:  # built from a half-scanned library, the playout would promise the wrong things
            ch.set_scanning(0)
            ch.waiting_for = f"library {', '.join(waiting)} is being scanned"
            return None

        def warn(msg: str) -> None:
            e.events.emit("programming_warning", f"channel {ch.number} ({ch.name}): {msg}", ch.number,
                          level=logging.WARNING)

        builder = Builder(cfg, lambda spec: resolve(spec, e.libraries.libraries), warn)
        now = e.clock.time()
        digest = config_hash(cfg)
        stored = previous if previous is not None else e.store.playout(ch.number) if e.store is not None else None
        playout: Playout
        if stored is not None and stored.get("hash") == digest:
            playout = Playout(builder, BuildState.from_json(stored["state"]), self.ahead)
            playout.load(stored_airings(stored), self._by_path())
        else:
            state = BuildState(now)
            if stored is not None:  # the programming changed: what is on air finishes first
                old = BuildState.from_json(stored["state"])
                state.cursors = old.cursors
                keep = [a for a in stored_airings(stored) if a[0] <= now < a[1]]
                playout = Playout(builder, state, self.ahead)
                if keep:
                    playout.load(keep, self._by_path())
                    state.t = keep[-1][1]
                warn("programming changed: the new schedule starts after the programme on air")
            else:
                playout = Playout(builder, state, self.ahead)
        playout.on_extend = lambda p: self.save(ch, p)
        playout.trim(now)
        playout.extend(now + self.ahead)
        self.save(ch, playout)
        if not any(a[4] != "slate" for a in playout.airings):
            warn("nothing to play: every collection is empty; the slate airs until media is found")
        return playout

    def libraries_of(self, cfg) -> list[str]:
        """The libraries a channel's collections draw from (all of them when one names none)."""
        specs = [e.collection for e in cfg.schedule] + [s.collection for s in cfg.slots]
        if cfg.filler is not None:
            specs += [x for x in (cfg.filler.collection, cfg.filler.pre_roll, cfg.filler.post_roll, cfg.filler.mid_roll,
                                  cfg.filler.fallback) if x is not None]
        if any(s.library is None for s in specs):
            return list(self.engine.libraries.libraries)
        return sorted({s.library for s in specs})

    def save(self, ch: "Channel", playout: Playout) -> None:
        if self.engine.store is not None:
            playout.trim(self.engine.clock.time())
            self.engine.store.set_playout(ch.number, playout.to_json(config_hash(ch.cfg)))
        self.engine.guide.invalidate()

    def library_changed(self, ch: "Channel") -> None:
        """New and removed items enter at the next extension; a channel waiting for its first scan starts."""
        if isinstance(ch.schedule, Playout):
            builder = ch.schedule.builder
            builder.forget()
            if not builder.empty:
                return  # the guide's promises hold; new items enter as the playout is extended
            # it was built while a collection was empty: what is on air finishes, then a new build
            self.engine.events.emit("programming_rebuilt", f"channel {ch.number}: a collection that was empty has "
                                    "media now; the playout is built again after the programme on air", ch.number)
            previous = json.loads(ch.schedule.to_json("rebuild"))  # a hash that never matches
            playout = self.build(ch, previous)
            if playout is not None:
                ch.set_schedule(playout, None)
                self.save(ch, playout)
            return
        playout = self.build(ch)
        if playout is not None:
            ch.waiting_for = None
            ch.set_schedule(playout, None)
