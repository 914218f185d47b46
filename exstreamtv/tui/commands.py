"""The console's command palette (ctrl+p): restart or put the error screen on a channel, kick a
session, by name, from the last snapshot."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider


class ChannelCommands(Provider):
    """Command palette: restart / error screen per channel, kick per session."""

    async def search(self, query: str) -> Hits:
        app = self.app  # the ConsoleApp
        snap = app.last_snapshot
        if snap is None:
            return
        matcher = self.matcher(query)
        for ch in snap.channels:
            n = ch["number"]
            for label, action in ((f"Restart channel {n} {ch['name']}", partial(app.restart_channel, n)),
                                  (f"Error screen for channel {n} {ch['name']}", partial(app.open_preview, n))):
                score = matcher.match(label)
                if score > 0:
                    yield Hit(score, matcher.highlight(label), action)
        for s in snap.sessions:
            label = f"Kick session {s['client_addr']} on channel {s['channel_id']}"
            score = matcher.match(label)
            if score > 0:
                yield Hit(score, matcher.highlight(label), partial(app.kick_session, s["session_id"]))
