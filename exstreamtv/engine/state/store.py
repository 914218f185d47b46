"""Durable state in SQLite (WAL): schedule epochs, the event log, session history, device id.

Writes never block the event loop: they go to a queue that one writer thread commits in
batches every ``commit_interval`` seconds (0.25 s by default), so a ``kill -9`` of the
server loses at most that much and, SQLite being transactional, never corrupts the file.
Reads are small indexed queries on their own connection.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

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
CREATE TABLE IF NOT EXISTS playouts (channel INTEGER PRIMARY KEY, body TEXT NOT NULL);
"""

_STOP = object()


def connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA busy_timeout=30000")
    return con


class Store:
    MAX_PENDING = 50_000  # writes kept while the disk refuses them
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
        self._retry: list[tuple[str, tuple]] = []
        self.bad_rows: list[str] = []  # rows skipped when reading (a warning each)
        self.written = 0
        self.write_failures = 0  # failed commits (each retried)
        self.dropped = 0  # writes given up because too many piled up while failing
        self.failing = False
        self.on_change: Callable[[bool, str], None] | None = None  # (works, message), from the writer thread
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        self._thread.start()

    @property
    def pending_retries(self) -> int:
        return len(self._retry)

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

    def set_playout(self, channel: int, body: str) -> None:
        """A channel's built playout (airings and builder state, JSON)."""
        self._put("INSERT OR REPLACE INTO playouts (channel, body) VALUES (?, ?)", (channel, body))

    def playout(self, channel: int) -> dict | None:
        rows = self._query("SELECT body FROM playouts WHERE channel = ?", (channel,))
        if not rows:
            return None
        try:
            body = json.loads(rows[0][0])
            if not isinstance(body, dict) or "state" not in body or "airings" not in body:
                raise ValueError("not a playout")
            return body
        except (TypeError, ValueError) as exc:
            self._bad_row("playouts", (channel, str(rows[0][0])[:80]), exc)
            return None

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
            batch = self._retry + batch
            self._retry = []
            if batch:
                try:
                    con.execute("BEGIN")
                    for sql, args in batch:
                        con.execute(sql, args)
                    con.execute("COMMIT")
                    self.written += len(batch)
                    if self.failing:
                        self.failing = False
                        log.warning("store writes work again; %d delayed writes committed", len(batch))
                        if self.on_change is not None:
                            self.on_change(True, f"database writes work again ({len(batch)} delayed writes saved)")
                except sqlite3.Error as exc:
                    # disk full, read-only, locked: keep the writes (bounded) and try again next round
                    try:
                        con.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    self.write_failures += 1
                    self._retry = batch[-self.MAX_PENDING:]
                    self.dropped += len(batch) - len(self._retry)
                    if not self.failing:
                        self.failing = True
                        log.error("store write failed (%s); %d writes kept and retried", exc, len(self._retry))
                        if self.on_change is not None:
                            self.on_change(False, f"database writes fail ({exc}); they are kept and retried")
                    if not stop:
                        time.sleep(min(5.0, self.commit_interval * 4))
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

    def _bad_row(self, table: str, row: tuple, exc: Exception) -> None:
        msg = f"{self.path}: skipped a bad row in table {table} ({exc}): {str(row)[:120]}"
        if msg in self.bad_rows:
            return  # read again: reported once
        self.bad_rows.append(msg)
        log.warning("%s", msg)

    def epochs(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for row in self._query("SELECT channel, epoch FROM epochs"):
            try:
                c, e = int(row[0]), float(row[1])
                if not math.isfinite(e):
                    raise ValueError("epoch is not a finite number")
                out[c] = e
            except (TypeError, ValueError) as exc:
                self._bad_row("epochs", row, exc)
        return out

    def meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def recent_events(self, limit: int = 2000, viewers: bool | None = None) -> list[dict[str, Any]]:
        """The latest events; ``viewers``: only session_* events (True) or only the others (False)."""
        where = "" if viewers is None else ("WHERE kind LIKE 'session\\_%' ESCAPE '\\' " if viewers else
                                            "WHERE kind NOT LIKE 'session\\_%' ESCAPE '\\' ")
        rows = self._query(f"SELECT id, ts, kind, channel, message, data FROM events {where}ORDER BY id DESC LIMIT ?",
                           (limit,))
        out = []
        for r in reversed(rows):
            try:
                data = json.loads(r[5] or "{}")
                if not isinstance(data, dict) or not isinstance(r[0], int) or not isinstance(r[2], str):
                    raise ValueError("wrong types")
                out.append({"id": r[0], "timestamp": float(r[1]), "kind": r[2],
                            "channel_id": r[3] if isinstance(r[3], int) else None, "message": str(r[4]),
                            "data": data})
            except (TypeError, ValueError) as exc:
                self._bad_row("events", r, exc)
        return out

    def session_history(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._query("SELECT session_id, channel, client, user_agent, kind, started, ended, bytes_sent, reason "
                           "FROM sessions ORDER BY ended DESC LIMIT ?", (limit,))
        keys = ("session_id", "channel_id", "client_addr", "user_agent", "kind", "created_at", "ended_at",
                "bytes_sent", "disconnect_reason")
        return [dict(zip(keys, r)) for r in rows]
