"""Durable state in SQLite (WAL): schedule epochs, the event log, session history, device id.

Writes never block the event loop: they go to a queue that one writer thread commits in
batches every ``commit_interval`` seconds (0.25 s by default), so a ``kill -9`` of the
server loses at most that much and, SQLite being transactional, never corrupts the file.
Reads are small indexed queries on their own connection.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("exstreamtv.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS epochs (channel INTEGER PRIMARY KEY, epoch REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, ts REAL NOT NULL, kind TEXT NOT NULL, channel INTEGER, message TEXT NOT NULL,
    data TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY, channel INTEGER NOT NULL, client TEXT, user_agent TEXT, kind TEXT,
    started REAL, ended REAL, bytes_sent INTEGER, reason TEXT);
CREATE INDEX IF NOT EXISTS sessions_ended ON sessions(ended);
"""

_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA busy_timeout=30000")
    return con


class Store:
    def __init__(self, path: Path, max_events: int = 100_000, max_sessions: int = 100_000,
                 commit_interval: float = 0.25) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_sessions = max_sessions
        self.commit_interval = commit_interval
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.path)
        con.executescript(SCHEMA)
        con.close()
        self._read = connect(self.path)
        self._read_lock = threading.Lock()
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()
        self.written = 0

    # ------------------------------------------------------------ writing (any thread, never blocks)
    def _put(self, sql: str, args: tuple) -> None:
        self._q.put((sql, args))

    def add_event(self, ev: dict[str, Any]) -> None:
        self._put("INSERT OR REPLACE INTO events (id, ts, kind, channel, message, data) VALUES (?,?,?,?,?,?)",
                  (ev["id"], ev["timestamp"], ev["kind"], ev.get("channel_id"), ev["message"],
                   json.dumps(ev.get("data") or {}, default=str)))

    def add_session(self, s: dict[str, Any]) -> None:
        self._put("INSERT OR REPLACE INTO sessions (session_id, channel, client, user_agent, kind, started, ended, "
                  "bytes_sent, reason) VALUES (?,?,?,?,?,?,?,?,?)",
                  (s["session_id"], s["channel_id"], s["client_addr"], s["user_agent"], s.get("kind", "stream"),
                   s["created_at"], s["ended_at"], s["bytes_sent"], s["disconnect_reason"]))

    def set_epoch(self, channel: int, epoch: float) -> None:
        self._put("INSERT OR IGNORE INTO epochs (channel, epoch) VALUES (?, ?)", (channel, epoch))

    def replace_epoch(self, channel: int, epoch: float) -> None:
        """The schedule was re-anchored at run time (a skipped or short file)."""
        self._put("INSERT OR REPLACE INTO epochs (channel, epoch) VALUES (?, ?)", (channel, epoch))

    def set_meta(self, key: str, value: str) -> None:
        self._put("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _writer(self) -> None:
        con = connect(self.path)
        last_trim = time.monotonic()
        stop = False
        while not stop:
            batch = []
            try:
                item = self._q.get(timeout=self.commit_interval)
                batch.append(item)
                deadline = time.monotonic() + self.commit_interval
                while time.monotonic() < deadline:
                    try:
                        batch.append(self._q.get(timeout=max(0.0, deadline - time.monotonic())))
                    except queue.Empty:
                        break
            except queue.Empty:
                pass
            if any(x is _STOP for x in batch):
                stop = True
                batch = [x for x in batch if x is not _STOP]
                while True:  # drain what is left
                    try:
                        x = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if x is not _STOP:
                        batch.append(x)
            if batch:
                try:
                    con.execute("BEGIN")
                    for sql, args in batch:
                        con.execute(sql, args)
                    con.execute("COMMIT")
                    self.written += len(batch)
                except sqlite3.Error:
                    log.exception("store write failed; %d writes lost", len(batch))
                    try:
                        con.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
            if time.monotonic() - last_trim > 60 or stop:
                self._trim(con)
                last_trim = time.monotonic()
        con.close()

    def _trim(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (self.max_events,))
            con.execute("DELETE FROM sessions WHERE rowid NOT IN (SELECT rowid FROM sessions ORDER BY ended DESC "
                        "LIMIT ?)", (self.max_sessions,))
        except sqlite3.Error:
            log.exception("store retention trim failed")

    def flush(self, timeout: float = 10) -> None:
        """Wait until everything queued so far is committed."""
        deadline = time.monotonic() + timeout
        while not self._q.empty() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(self.commit_interval * 1.5)

    def close(self) -> None:
        self._q.put(_STOP)
        self._thread.join(timeout=15)
        with self._read_lock:
            self._read.close()

    # ------------------------------------------------------------ reading
    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._read_lock:
            return self._read.execute(sql, args).fetchall()

    def epochs(self) -> dict[int, float]:
        return {int(c): float(e) for c, e in self._query("SELECT channel, epoch FROM epochs")}

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def recent_events(self, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self._query("SELECT id, ts, kind, channel, message, data FROM events ORDER BY id DESC LIMIT ?",
                           (limit,))
        return [{"id": r[0], "timestamp": r[1], "kind": r[2], "channel_id": r[3], "message": r[4],
                 "data": json.loads(r[5] or "{}")} for r in reversed(rows)]

    def session_history(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query("SELECT session_id, channel, client, user_agent, kind, started, ended, bytes_sent, reason "
                           "FROM sessions ORDER BY ended DESC LIMIT ?", (limit,))
        keys = ("session_id", "channel_id", "client_addr", "user_agent", "kind", "created_at", "ended_at",
                "bytes_sent", "disconnect_reason")
        return [dict(zip(keys, r)) for r in rows]
