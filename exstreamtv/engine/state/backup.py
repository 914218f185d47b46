"""Database backups: online and consistent (SQLite's backup API), gzip, UTC names, rotation.

``backup()`` copies the live database page by page while the server keeps writing, so the
copy is a consistent snapshot that contains every transaction committed before it.
``restore()`` checks a file (bounded unpacking, ``PRAGMA integrity_check``, then loading it
as the server would) before it replaces anything, and keeps the previous database aside.
"""

from __future__ import annotations

import gzip
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

PREFIX = "exstreamtv-"
MAX_RESTORE_BYTES = 4 << 30  # a real database stays far below (events and sessions are capped)


class BackupError(Exception):
    pass


def backup_name(t: float, compress: bool) -> str:
    return PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t)) + (".db.gz" if compress else ".db")


def list_backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob(PREFIX + "*.db*") if p.suffix in (".db", ".gz"))


def backup(db_path: Path, folder: Path, compress: bool = True, keep_count: int = 7, now: float | None = None) -> Path:
    """Take one backup of ``db_path`` into ``folder`` and delete the oldest beyond ``keep_count``."""
    if not db_path.exists():
        raise BackupError(f"no database at {db_path}")
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time() if now is None else now
    target = folder / backup_name(now, compress)
    n = 1
    while target.exists():  # two backups in one second keep both
        target = folder / (backup_name(now, compress).replace("Z.", f"Z-{n}.", 1))
        n += 1
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        raw = Path(tmp) / "copy.db"
        src = sqlite3.connect(str(db_path), timeout=30)
        dst = sqlite3.connect(str(raw))
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        if compress:
            with open(raw, "rb") as f, gzip.open(Path(tmp) / "copy.gz", "wb", compresslevel=6) as g:
                shutil.copyfileobj(f, g)
            (Path(tmp) / "copy.gz").replace(target)
        else:
            raw.replace(target)
    for old in list_backups(folder)[:-keep_count]:
        old.unlink(missing_ok=True)
    return target


def verify(file: Path, work: Path) -> Path:
    """Decompress (if needed) into ``work`` and check integrity; returns the plain database file."""
    if not file.is_file():
        raise BackupError(f"{file}: no such backup file")
    plain = work / "restore.db"
    try:
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rb") as g, open(plain, "wb") as f:  # type: ignore[operator]
            size = 0
            while chunk := g.read(1 << 20):
                size += len(chunk)
                if size > MAX_RESTORE_BYTES:  # a gzip bomb is refused before it fills the disk
                    raise BackupError(f"{file}: unpacks to more than {MAX_RESTORE_BYTES >> 20} MiB; not a backup "
                                      "of this server")
                f.write(chunk)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BackupError(f"{file}: not a readable backup ({exc})") from None
    try:
        con = sqlite3.connect(str(plain))
        try:
            result = con.execute("PRAGMA integrity_check").fetchall()
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{file}: not an SQLite database ({exc})") from None
    if result != [("ok",)]:
        raise BackupError(f"{file}: integrity check failed: {'; '.join(r[0] for r in result[:3])}")
    if not {"events", "epochs", "sessions", "meta"} <= tables:
        raise BackupError(f"{file}: not an EXStreamTV database (tables: {', '.join(sorted(tables)) or 'none'})")
    from .store import Store  # loads it as the server would: a backup that verifies must also load

    try:
        store = Store(plain, commit_interval=0.05)
        try:
            store.epochs()
            store.recent_events(10)
            store.session_history(10)
        finally:
            store.close()
    except Exception as exc:
        raise BackupError(f"{file}: does not load as a database of this server ({exc})") from None
    return plain


def restore(file: Path, db_path: Path, now: float | None = None) -> Path | None:
    """Replace ``db_path`` with a verified backup (the server must not be running). The previous
    database is kept aside (returned), never deleted."""
    with tempfile.TemporaryDirectory(dir=db_path.parent) as tmp:
        plain = verify(file, Path(tmp))
        for suffix in ("-wal", "-shm"):
            Path(str(plain) + suffix).unlink(missing_ok=True)
        kept = None
        if db_path.exists():
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
            kept = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(db_path) + suffix)
                if src.exists():
                    src.replace(Path(str(kept) + suffix))
        plain.replace(db_path)
        return kept
