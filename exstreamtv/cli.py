"""``exstreamtv``: start the engine and the HTTP server, with the console or headless."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .engine.config import Config, ConfigError, load_config
from .engine.ffmpeg.binary import FFmpegNotFound

DEFAULT_DATA_DIR = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "exstreamtv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="exstreamtv",
        description="EXStreamTV: media files become always-on live TV channels, served over HTTP "
                    "(MPEG-TS, M3U) with an operations console. With no config and no media it "
                    "serves three demo channels.",
        epilog="Watch a channel: ffplay http://127.0.0.1:8411/stream/channels/1.ts  "
               "Playlist: http://127.0.0.1:8411/iptv/channels.m3u",
    )
    p.add_argument("--config", metavar="PATH", help="YAML config file (default: <data-dir>/exstreamtv.yaml "
                   "if it exists, else built-in defaults; see config/exstreamtv.yaml)")
    p.add_argument("--host", help="address to listen on (default: server.host, 0.0.0.0; env EXSTREAMTV_HOST)")
    p.add_argument("--port", type=int, help="port to listen on (default: server.port, 8411; env EXSTREAMTV_PORT)")
    p.add_argument("--data-dir", metavar="DIR", default=None,
                   help=f"where demo clips, caches and state live (default: {DEFAULT_DATA_DIR})")
    p.add_argument("--no-tui", action="store_true", help="run headless (a service, a container): no console, "
                   "logs to stderr")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="log level (default: info)")
    p.add_argument("--version", action="version", version=f"exstreamtv {__version__}")
    sub = p.add_subparsers(dest="command", metavar="{console,reload,scan,backup,restore}",
                           help="commands (without one: run the server)")
    c = sub.add_parser("console", help="the console, attached to a running server (over SSH: it finds the "
                       "server of the data dir, or use --connect); q leaves the server running")
    c.add_argument("--connect", metavar="URL", help="the server's URL (default: the one running on the data dir)")
    c.add_argument("--token", help="the server's api_token (default: read from the data dir; env "
                   "EXSTREAMTV_API_TOKEN); without one a remote console is read-only")
    c.add_argument("--data-dir", metavar="DIR", dest="sub_data_dir", help="as above")
    rl = sub.add_parser("reload", help="make the running server read its config again (like SIGHUP)")
    rl.add_argument("--connect", metavar="URL", help="the server's URL (default: the one running on the data dir)")
    rl.add_argument("--token", help="the server's api_token (default: read from the data dir)")
    rl.add_argument("--data-dir", metavar="DIR", dest="sub_data_dir", help="as above")
    s = sub.add_parser("scan", help="rescan libraries now (by the running server, else here into the data dir)")
    s.add_argument("libraries", nargs="*", metavar="LIBRARY", help="library names (default: all)")
    s.add_argument("--connect", metavar="URL", help="the server's URL (default: the one running on the data dir)")
    s.add_argument("--token", help="the server's api_token (default: read from the data dir)")
    s.add_argument("--data-dir", metavar="DIR", dest="sub_data_dir", help="as above")
    b = sub.add_parser("backup", help="take a consistent database backup now (also while the server runs)")
    b.add_argument("--data-dir", metavar="DIR", dest="sub_data_dir", help="as above")
    r = sub.add_parser("restore", help="restore the database from a backup file (the server must be stopped)")
    r.add_argument("file", metavar="FILE", help="a backup made by `exstreamtv backup` or the backup task")
    r.add_argument("--data-dir", metavar="DIR", dest="sub_data_dir", help="as above")
    return p


class EmbeddedBackend:
    """The console runs the engine and the HTTP server in its own process (``exstreamtv``)."""

    owns_server = True

    def __init__(self, cfg: Config, data_dir: Path, host: str | None = None, port: int | None = None) -> None:
        self.cfg, self.data_dir, self.host, self.port = cfg, data_dir, host, port
        self.handle = None
        self.engine = None  # kept after stop: leftovers are killed even if a stop failed half-way

    async def start(self):
        from .engine.control import ControlUnavailable
        from .engine.local_control import LocalControl
        from .engine.engine import Engine
        from .server.runner import ServerHandle, ServerStartError

        engine = Engine(self.cfg, self.data_dir)
        handle = ServerHandle(engine, host=self.host, port=self.port)
        try:
            await handle.start()
        except (ServerStartError, FFmpegNotFound) as exc:
            await engine.stop()
            raise ControlUnavailable(str(exc)) from None
        except BaseException:
            await engine.stop()
            raise
        self.handle, self.engine = handle, engine
        return LocalControl(engine, handle.urls)

    async def stop(self, status=None) -> None:
        handle, self.handle = self.handle, None  # once: a second stop (say, after a failure) does nothing
        if handle is None:
            return
        if status is not None:
            status(f"ending viewer streams and {handle.engine.pool.running} FFmpeg process(es)…")
        await handle.stop()
        if status is not None:
            status(f"stopped; {handle.engine.pool.running} FFmpeg processes left")

    def kill_leftovers(self) -> None:
        if self.engine is not None and self.engine.pool.running:
            self.engine.pool.kill_all_now()


class AttachedBackend:
    """The console attached to a running server over HTTP (``exstreamtv console``)."""

    owns_server = False

    def __init__(self, url: str | None, token: str | None, data_dir: Path) -> None:
        self.url, self.token, self.data_dir = url, token, data_dir
        self.control = None

    async def start(self):
        from .attach import HttpControl, NotConnected, find_local_server
        from .engine.control import ControlUnavailable

        url, token = self.url, self.token
        if url is None:
            try:
                url, found = find_local_server(self.data_dir)
            except NotConnected as exc:
                raise ControlUnavailable(str(exc)) from None
            token = token or found
        self.control = HttpControl(url, token)
        self.control.start()
        return self.control

    async def stop(self, status=None) -> None:
        if status is not None:
            status("detaching; the server keeps running")
        if self.control is not None:
            await self.control.close()


def run_maintenance(args: argparse.Namespace, cfg: Config, data_dir: Path) -> int:
    import fcntl

    from .engine.state.backup import BackupError, backup, restore
    from .engine.engine import DB_NAME, LOCK_NAME

    db = data_dir / DB_NAME
    try:
        if args.command == "backup":
            out = backup(db, data_dir / "backups", cfg.database_backup.compress, cfg.database_backup.keep_count)
            print(f"backup written: {out}")
            return 0
        lock_path = data_dir / LOCK_NAME
        data_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                print(f"exstreamtv: refusing to restore: a server is running on {data_dir}; stop it first",
                      file=sys.stderr)
                return 2
            kept = restore(Path(args.file).expanduser(), db)
        print(f"restored {db} from {args.file}" + (f"; the previous database is kept as {kept}" if kept else ""))
        return 0
    except BackupError as exc:
        print(f"exstreamtv: {exc}", file=sys.stderr)
        return 2


def resolve_config(args: argparse.Namespace, data_dir: Path) -> Config:
    path = args.config
    if path is None and (data_dir / "exstreamtv.yaml").exists():
        path = data_dir / "exstreamtv.yaml"
    cfg = load_config(path)
    if args.host:
        cfg.server.host = args.host
    if args.port is not None:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535, got {args.port}")
        cfg.server.port = args.port
    return cfg


async def run_headless(cfg: Config, data_dir: Path) -> int:
    from .engine.engine import Engine
    from .server.runner import ServerHandle

    log = logging.getLogger("exstreamtv")
    engine = Engine(cfg, data_dir)
    handle = ServerHandle(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    from .engine.reload import reload_from_file

    # SIGHUP: read the config again (systemctl reload); the result is logged and an event
    loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_from_file(engine)))
    try:
        await handle.start()
    except BaseException:
        await engine.stop()
        raise
    for url in handle.urls:
        log.info("watch: %s/stream/channels/%s.ts   playlist: %s/iptv/channels.m3u", url,
                 min(engine.channels) if engine.channels else 1, url)
    waiter = asyncio.ensure_future(stop.wait())
    server_done = asyncio.ensure_future(handle.wait())
    await asyncio.wait({waiter, server_done}, return_when=asyncio.FIRST_COMPLETED)
    log.info("shutting down: ending viewer streams and FFmpeg processes")
    waiter.cancel()
    await handle.stop()
    server_done.cancel()
    log.info("stopped cleanly")
    return 0


def setup_logging(level: str) -> None:
    from .engine.observe.log_ring import log_ring

    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")
    log_ring()  # the latest lines, for attached consoles


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    chosen = getattr(args, "sub_data_dir", None) or args.data_dir
    data_dir = Path(chosen).expanduser() if chosen else DEFAULT_DATA_DIR
    if args.command == "reload":  # the server reads its own config file
        from .scan_cli import run_reload

        return run_reload(data_dir, args.connect, args.token or os.environ.get("EXSTREAMTV_API_TOKEN") or None)
    if args.command == "console":  # needs no config: it reads everything from the server
        from .tui.app import run_console

        token = args.token or os.environ.get("EXSTREAMTV_API_TOKEN") or None
        return run_console(AttachedBackend(args.connect, token, data_dir), args.log_level)
    try:
        cfg = resolve_config(args, data_dir)
    except ConfigError as exc:
        print(f"exstreamtv: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "scan":
        from .scan_cli import run_scan

        return run_scan(args.libraries, cfg, data_dir, args.connect,
                        args.token or os.environ.get("EXSTREAMTV_API_TOKEN") or None)
    if args.command:
        return run_maintenance(args, cfg, data_dir)
    from .server.runner import ServerStartError

    try:
        if args.no_tui:
            setup_logging(args.log_level)
            return asyncio.run(run_headless(cfg, data_dir))
        from .tui.app import run_console

        return run_console(EmbeddedBackend(cfg, data_dir), args.log_level, cfg)
    except (FFmpegNotFound, ServerStartError) as exc:
        print(f"exstreamtv: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
